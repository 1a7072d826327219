//! The UWS 1.1 documents: job, job list, and the parameters and results elements on their
//! own. Every document here validates against the UWS 1.1 schema (the conformance suite
//! checks each with xmllint). Text is escaped by `votable::xml::escape`, the one XML escaper.

use votable::xml::escape;

use crate::model::{format_time, Job, Phase};

const NAMESPACES: &str = "xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\" \
xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

fn time_element(out: &mut String, name: &str, t: Option<i64>) {
    match t {
        Some(t) => out.push_str(&format!("  <uws:{name}>{}</uws:{name}>\n", format_time(t))),
        None => out.push_str(&format!("  <uws:{name} xsi:nil=\"true\"/>\n")),
    }
}

/// The `uws:parameters` element.
pub fn parameters_body(job: &Job, indent: &str) -> String {
    let mut out = format!("{indent}<uws:parameters>\n");
    for (k, v) in &job.parameters {
        out.push_str(&format!(
            "{indent}  <uws:parameter id=\"{}\">{}</uws:parameter>\n",
            escape(&k.to_ascii_lowercase()),
            escape(v)
        ));
    }
    out.push_str(&format!("{indent}</uws:parameters>\n"));
    out
}

/// The `uws:results` element: the results of a COMPLETED job, each at `<job_url>/results/<id>`.
pub fn results_body(job: &Job, job_url: &str, indent: &str) -> String {
    if job.phase != Phase::Completed || job.results.is_empty() {
        return format!("{indent}<uws:results/>\n");
    }
    let mut out = format!("{indent}<uws:results>\n");
    for r in &job.results {
        // A result served elsewhere (a link) has no size of its own.
        let size = match r.link {
            None => format!(" size=\"{}\"", r.size),
            Some(_) => String::new(),
        };
        out.push_str(&format!(
            "{indent}  <uws:result id=\"{id}\" xlink:type=\"simple\" \
             xlink:href=\"{}/results/{id}\"{size} mime-type=\"{}\"/>\n",
            escape(job_url),
            escape(&r.content_type),
            id = escape(&r.id),
        ));
    }
    out.push_str(&format!("{indent}</uws:results>\n"));
    out
}

/// The job document (UWS `uws:job`).
pub fn job_document(job: &Job, job_url: &str) -> String {
    let mut out = format!("{XML_DECL}<uws:job {NAMESPACES} version=\"1.1\">\n");
    out.push_str(&format!("  <uws:jobId>{}</uws:jobId>\n", escape(&job.id)));
    if let Some(r) = &job.run_id {
        out.push_str(&format!("  <uws:runId>{}</uws:runId>\n", escape(r)));
    }
    match &job.owner {
        Some(o) => out.push_str(&format!("  <uws:ownerId>{}</uws:ownerId>\n", escape(o))),
        None => out.push_str("  <uws:ownerId xsi:nil=\"true\"/>\n"),
    }
    out.push_str(&format!(
        "  <uws:phase>{}</uws:phase>\n",
        job.phase.as_str()
    ));
    out.push_str("  <uws:quote xsi:nil=\"true\"/>\n");
    time_element(&mut out, "creationTime", Some(job.creation_time));
    time_element(&mut out, "startTime", job.start_time);
    time_element(&mut out, "endTime", job.end_time);
    out.push_str(&format!(
        "  <uws:executionDuration>{}</uws:executionDuration>\n",
        job.execution_duration.min(i32::MAX as u64)
    ));
    time_element(&mut out, "destruction", Some(job.destruction));
    out.push_str(&parameters_body(job, "  "));
    out.push_str(&results_body(job, job_url, "  "));
    if let (Phase::Error, Some(msg)) = (job.phase, &job.error) {
        out.push_str(&format!(
            "  <uws:errorSummary type=\"fatal\" hasDetail=\"true\">\n    <uws:message>{}</uws:message>\n  </uws:errorSummary>\n",
            escape(msg)
        ));
    }
    if let Some(info) = &job.job_info {
        out.push_str(&format!("  <uws:jobInfo>{info}</uws:jobInfo>\n"));
    }
    out.push_str("</uws:job>\n");
    out
}

/// The job list (UWS `uws:jobs`).
pub fn job_list(jobs: &[Job], list_url: &str) -> String {
    let mut out = format!("{XML_DECL}<uws:jobs {NAMESPACES} version=\"1.1\">\n");
    for j in jobs {
        out.push_str(&format!(
            "  <uws:jobref id=\"{id}\" xlink:type=\"simple\" xlink:href=\"{}/{id}\">\n    <uws:phase>{}</uws:phase>\n",
            escape(list_url),
            j.phase.as_str(),
            id = escape(&j.id),
        ));
        if let Some(r) = &j.run_id {
            out.push_str(&format!("    <uws:runId>{}</uws:runId>\n", escape(r)));
        }
        match &j.owner {
            Some(o) => out.push_str(&format!("    <uws:ownerId>{}</uws:ownerId>\n", escape(o))),
            None => out.push_str("    <uws:ownerId xsi:nil=\"true\"/>\n"),
        }
        out.push_str(&format!(
            "    <uws:creationTime>{}</uws:creationTime>\n  </uws:jobref>\n",
            format_time(j.creation_time)
        ));
    }
    out.push_str("</uws:jobs>\n");
    out
}

/// A child element of the job document (parameters, results) as a document of its own,
/// with the namespaces on it.
pub fn standalone(body: String) -> String {
    let body = body.trim_start();
    let (open, rest) = match body.find(['>', '/']) {
        Some(i) => body.split_at(i),
        None => (body, ""),
    };
    format!("{XML_DECL}{open} {NAMESPACES}{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobResult;

    fn job() -> Job {
        Job {
            id: "abc".into(),
            kind: "tap".into(),
            run_id: Some("r<1>".into()),
            owner: None,
            phase: Phase::Completed,
            creation_time: 1_700_000_000_000,
            start_time: Some(1_700_000_001_000),
            end_time: None,
            execution_duration: 60,
            destruction: 1_700_600_000_000,
            parameters: vec![("QUERY".into(), "SELECT a < 1 & b".into())],
            uploads: vec![],
            job_info: None,
            origin: None,
            error: None,
            results: vec![JobResult {
                id: "result".into(),
                path: "jobs/abc/result.vot".into(),
                content_type: "application/x-votable+xml".into(),
                size: 10,
                link: None,
            }],
        }
    }

    #[test]
    fn documents_escape_and_name_the_result_result() {
        let d = job_document(&job(), "http://h/tap/async/abc");
        assert!(d.contains("<uws:runId>r&lt;1&gt;</uws:runId>"), "{d}");
        assert!(d.contains("<uws:parameter id=\"query\">SELECT a &lt; 1 &amp; b</uws:parameter>"));
        assert!(d.contains(
            "<uws:result id=\"result\" xlink:type=\"simple\" xlink:href=\"http://h/tap/async/abc/results/result\""
        ));
        assert!(d.contains("<uws:endTime xsi:nil=\"true\"/>"));
        assert!(d.contains("<uws:startTime>2023-11-14T22:13:21.000Z</uws:startTime>"));
        let p = standalone(parameters_body(&job(), ""));
        assert!(
            p.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<uws:parameters xmlns:uws=")
        );
        let r = standalone("<uws:results/>\n".into());
        assert!(r.contains("<uws:results xmlns:uws=\"http://www.ivoa.net/xml/UWS/v1.0\""));
        assert!(r.trim_end().ends_with("/>"), "{r}");
    }
}
