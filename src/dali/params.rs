//! DALI request parameters: names are case-insensitive, values are kept as sent; GET query
//! strings and POSTed forms are read alike.

use actix_web::HttpRequest;

/// The parameters of one request.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters from the query string and, for a form POST, the body.
    pub fn from_request(req: &HttpRequest, body: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .map(|(k, v)| (k.to_ascii_uppercase(), v.into_owned()))
                .collect();
        let form = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
            .unwrap_or(false);
        if form
            || (!body.is_empty()
                && req.method() == actix_web::http::Method::POST
                && !has_content_type(req))
        {
            pairs.extend(
                url::form_urlencoded::parse(body)
                    .map(|(k, v)| (k.to_ascii_uppercase(), v.into_owned())),
            );
        }
        Params { pairs }
    }

    /// Parameters from (name, value) pairs, e.g. those an asynchronous job stored.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Params {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_uppercase(), v))
                .collect(),
        }
    }

    /// Every (upper-cased name, value) pair, in the order given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Every value of a repeatable parameter.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a parameter, empty values counting as absent.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

fn has_content_type(req: &HttpRequest) -> bool {
    req.headers()
        .contains_key(actix_web::http::header::CONTENT_TYPE)
}
