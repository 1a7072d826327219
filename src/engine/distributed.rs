//! Queries on several machines, on datafusion-distributed (docs/distributed.md): the server
//! that plans a query is the coordinator, and `vostok worker` processes run the stages it
//! cuts the physical plan into (scans, partial aggregates, join sides), exchanging Arrow
//! batches over gRPC.
//!
//! Only a query the slow lane would run is sent to the workers, and only when its plan is
//! made of DataFusion's own operators (the workers decode it with DataFusion's codec): the
//! ObsCore products' `PrefixExec` and uncorrelated scalar subqueries stay on the
//! coordinator. A query the distributed planner leaves whole runs as it was planned here.
//! The catalogs' scans are plain Parquet scans over a list of HEALPix partitions, already
//! pruned when planned; ADQL's functions cross the wire by name, so every worker registers
//! them ([`worker_state`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNode;
use datafusion::common::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_distributed::{
    DistributedConfig, DistributedExec, DistributedExt, NetworkBoundaryExt, RouteTasksEvent,
    RouteTasksEventResponse, RouteTasksHandler, SessionStateBuilderExt, Stage, Worker,
    WorkerQueryContext, WorkerResolver,
};
use serde::{Deserialize, Serialize};
use url::Url;

/// `[distributed]` in vostok.toml: the query workers this server sends large queries to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedSettings {
    /// Base URLs of the `vostok worker` processes (`http://host:port`). Empty: every query
    /// runs on this server.
    pub workers: Vec<String>,
    /// Parquet bytes one task of a distributed scan reads: a scan of more than this many
    /// bytes per core of this server is spread over the workers (the planner's
    /// `file_scan_config_bytes_per_partition`). 0: the planner's default (16 MiB).
    pub bytes_per_task: usize,
    /// A secret the servers and the workers share: a worker runs only the stages of a
    /// request that carries it. `$VOSTOK_WORKER_SECRET`, when set, takes its place. Needed
    /// by a worker that listens on another interface than the loopback one.
    pub secret: Option<String>,
}

/// The header a server's requests to the workers carry the shared secret in.
const SECRET_HEADER: &str = "x-vostok-worker-secret";

impl DistributedSettings {
    /// The shared secret in effect (`$VOSTOK_WORKER_SECRET`, else `secret`), if any.
    pub fn secret(&self) -> Option<String> {
        std::env::var("VOSTOK_WORKER_SECRET")
            .ok()
            .or_else(|| self.secret.clone())
            .filter(|s| !s.is_empty())
    }
}

impl DistributedSettings {
    /// The workers' URLs, checked.
    pub fn urls(&self) -> anyhow::Result<Vec<Url>> {
        self.workers
            .iter()
            .map(|w| {
                let u = Url::parse(w)
                    .map_err(|e| anyhow::anyhow!("[distributed] workers: '{w}': {e}"))?;
                match u.scheme() {
                    "http" | "https" if u.host().is_some() => Ok(u),
                    _ => anyhow::bail!(
                        "[distributed] workers: '{w}' is not an http:// or https:// address"
                    ),
                }
            })
            .collect()
    }
}

/// The workers a coordinator distributes to.
#[derive(Debug, Clone)]
pub struct Distribution {
    workers: Vec<Url>,
    bytes_per_task: usize,
    secret: Option<String>,
}

impl Distribution {
    /// From the settings; None when no worker is named.
    pub fn from_settings(s: &DistributedSettings) -> anyhow::Result<Option<Distribution>> {
        let workers = s.urls()?;
        if workers.is_empty() {
            return Ok(None);
        }
        Ok(Some(Distribution {
            workers,
            bytes_per_task: s.bytes_per_task,
            secret: s.secret(),
        }))
    }

    /// The workers' URLs.
    pub fn workers(&self) -> &[Url] {
        &self.workers
    }

    /// A session that plans like `config` and then cuts the physical plan into stages for
    /// the workers; ADQL's functions and rules registered as in every session.
    pub(super) fn coordinator(
        &self,
        config: SessionConfig,
        env: Arc<RuntimeEnv>,
    ) -> anyhow::Result<SessionContext> {
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(env)
            .with_default_features()
            .with_distributed_passthrough_headers(secret_headers(self.secret.as_deref())?)?
            .with_distributed_planner()
            .with_distributed_worker_resolver(Fixed(self.workers.clone()))
            .with_distributed_route_tasks_handler(RoundRobin {
                workers: self.workers.clone(),
                next: AtomicUsize::new(0),
            })
            .build();
        let ctx = SessionContext::new_with_state(state);
        if self.bytes_per_task > 0 {
            let state = ctx.state_ref();
            let mut state = state.write();
            let d = DistributedConfig::from_config_options_mut(state.config_mut().options_mut())?;
            d.file_scan_config_bytes_per_partition = self.bytes_per_task;
        }
        adql::register(&ctx);
        Ok(ctx)
    }
}

/// The fixed list of workers.
struct Fixed(Vec<Url>);

impl WorkerResolver for Fixed {
    fn get_urls(&self) -> datafusion::common::Result<Vec<Url>> {
        Ok(self.0.clone())
    }
}

/// Where the tasks of one query's stages were sent, in the order the coordinator sent them
/// (a stage after the stages it reads). A query's task context carries it
/// ([`task_ctx_recording`]); [`RoundRobin`] fills it.
#[derive(Debug, Default)]
pub struct Routing(Mutex<Vec<Vec<Url>>>);

impl Routing {
    /// The workers of each stage's tasks, in routing order.
    fn routed(&self) -> Vec<Vec<Url>> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// One line per stage of `plan` (a [`DistributedExec`] that was executed with this
    /// routing): `stage N: K tasks: task 0 on http://…, task 1 on …`. Empty before the query
    /// started.
    pub fn describe(&self, plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
        let routed = self.routed();
        let mut stages = Vec::new();
        stages_routing_order(plan, &mut stages);
        // The coordinator routes the stages bottom-up, as they are listed here; a routing
        // that does not fit (not expected) is shown without the stage numbers.
        let fits = stages.len() == routed.len()
            && stages.iter().zip(&routed).all(|((_, n), r)| *n == r.len());
        routed
            .iter()
            .enumerate()
            .map(|(i, urls)| {
                let tasks = urls
                    .iter()
                    .enumerate()
                    .map(|(t, u)| format!("task {t} on {}", u.as_str().trim_end_matches('/')))
                    .collect::<Vec<_>>()
                    .join(", ");
                let name = match fits {
                    true => format!("stage {}", stages[i].0),
                    false => format!("stage #{}", i + 1),
                };
                let s = if urls.len() == 1 { "" } else { "s" };
                format!("{name}: {} task{s}: {tasks}", urls.len())
            })
            .collect()
    }
}

/// The stages below `plan` as (number, tasks), each after the stages it reads: the order in
/// which the coordinator routes them (a bottom-up walk of the plan).
fn stages_routing_order(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<(usize, usize)>) {
    for child in plan.children() {
        stages_routing_order(child, out);
    }
    if let Some(boundary) = plan.as_network_boundary() {
        if let Stage::Local(stage) = boundary.input_stage() {
            out.push((stage.num, stage.tasks));
        }
    }
}

/// A task context of `ctx` that records where the query's tasks go in `routing`.
pub fn task_ctx_recording(ctx: &SessionContext, routing: Arc<Routing>) -> Arc<TaskContext> {
    let state = ctx.state();
    let config = state.config().clone().with_extension(routing);
    Arc::new(TaskContext::from(&state).with_session_config(config))
}

/// Sends a stage's tasks to the workers in turn, each stage starting where the last one of
/// this server stopped, so that the tasks of concurrent queries spread evenly. A stage of
/// one task over a stage that ran on one worker goes to that worker (no transfer), as the
/// library's default routing does. The choice is written into the query's [`Routing`].
struct RoundRobin {
    workers: Vec<Url>,
    next: AtomicUsize,
}

impl RouteTasksHandler for RoundRobin {
    fn handle(
        &self,
        ev: RouteTasksEvent,
    ) -> Option<datafusion::common::Result<RouteTasksEventResponse>> {
        if self.workers.is_empty() {
            return None;
        }
        let urls = match single_child_worker(&ev) {
            Some(url) => vec![url],
            None => {
                let start = self.next.fetch_add(ev.task_count, Ordering::Relaxed);
                (0..ev.task_count)
                    .map(|i| self.workers[(start + i) % self.workers.len()].clone())
                    .collect()
            }
        };
        if let Some(routing) = ev.task_ctx.session_config().get_extension::<Routing>() {
            if let Ok(mut r) = routing.0.lock() {
                r.push(urls.clone());
            }
        }
        Some(Ok(RouteTasksEventResponse::new(urls)))
    }
}

/// For a stage of one task: the worker of the first stage it reads, when that stage ran as
/// one task.
fn single_child_worker(ev: &RouteTasksEvent) -> Option<Url> {
    if ev.task_count != 1 {
        return None;
    }
    let mut found = None;
    let _ = ev.plan.apply(|node| {
        use datafusion::common::tree_node::TreeNodeRecursion;
        let Some(boundary) = node.as_network_boundary() else {
            return Ok(TreeNodeRecursion::Continue);
        };
        if let Stage::Remote(remote) = boundary.input_stage() {
            if let [only] = remote.workers.as_slice() {
                found = Some(only.clone());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Jump)
    });
    found
}

/// Why a physical plan must run on this server rather than be cut into stages for the
/// workers; None when it may be. A worker decodes the plan with DataFusion's codec, which
/// carries DataFusion's operators and finds functions by name in the worker's session:
/// * the products' `PrefixExec` is vostok's own operator;
/// * a `ScalarSubqueryExec` (an uncorrelated scalar subquery) is planned otherwise by the
///   distributed planner, which would change when its "more than one row" error is raised;
/// * a function whose definition here differs from the one registered under its name (in
///   `dist`, the session the workers' sessions are made like) would arrive changed: the
///   checked integer + - * and the crossmatch functions of a DISTANCE condition carry the
///   place or the function their errors name.
pub fn stays_here(plan: &Arc<dyn ExecutionPlan>, dist: &SessionContext) -> Option<String> {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::physical_expr::ScalarFunctionExpr;
    let state = dist.state();
    let functions = state.scalar_functions();
    let mut why = None;
    let walked = plan.apply(|node| {
        let name = node.name();
        if name == "PrefixExec" || name.contains("Subquery") {
            why = Some(format!("the plan holds a {name}"));
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(&mut |expr| {
            expr.apply(|e| {
                let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() else {
                    return Ok(TreeNodeRecursion::Continue);
                };
                match functions.get(f.name()) {
                    Some(registered) if registered.as_ref() == f.fun() => {
                        Ok(TreeNodeRecursion::Continue)
                    }
                    _ => {
                        why = Some(format!(
                            "the function {} would not reach the workers as it is here",
                            f.name()
                        ));
                        Ok(TreeNodeRecursion::Stop)
                    }
                }
            })
        })
    });
    match walked {
        Ok(_) => why,
        Err(e) => Some(format!("the plan could not be checked: {e}")),
    }
}

/// Whether the distributed planner cut the plan into stages (it leaves small plans whole).
pub fn is_distributed(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.downcast_ref::<DistributedExec>().is_some()
}

/// The headers every request to a worker carries: the shared secret, when there is one.
fn secret_headers(secret: Option<&str>) -> datafusion::common::Result<http::HeaderMap> {
    let mut headers = http::HeaderMap::new();
    if let Some(secret) = secret {
        let value = http::HeaderValue::from_str(secret).map_err(|_| {
            DataFusionError::Configuration(
                "[distributed] secret: only visible ASCII characters".into(),
            )
        })?;
        headers.insert(SECRET_HEADER, value);
    }
    Ok(headers)
}

/// The session a worker runs a stage in: DataFusion's settings as the coordinator sent
/// them, this process's runtime (memory pool, spill space, object store of the data
/// folder) and ADQL's functions. A request without the shared secret (when the worker has
/// one) is refused; the secret goes on with the requests this worker makes to others (the
/// stages above a shuffle read from the workers below it).
fn worker_state(
    ctx: WorkerQueryContext,
    env: Arc<RuntimeEnv>,
    secret: Option<&str>,
) -> datafusion::common::Result<SessionState> {
    if let Some(secret) = secret {
        let given = ctx
            .headers
            .get(SECRET_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given, secret.as_bytes())) {
            return Err(DataFusionError::Configuration(
                "this query worker refuses requests without its secret ([distributed] secret \
                 of the server that sent it)"
                    .into(),
            ));
        }
    }
    let builder = ctx
        .builder
        .with_runtime_env(env)
        .with_distributed_passthrough_headers(secret_headers(secret)?)?;
    let session = SessionContext::new_with_state(builder.build());
    adql::register(&session);
    Ok(session.state())
}

/// The worker gRPC service of `vostok worker`, over `env`.
pub fn worker(env: Arc<RuntimeEnv>, secret: Option<String>) -> Worker {
    let secret: Option<Arc<str>> = secret.map(Arc::from);
    Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let env = env.clone();
        let secret = secret.clone();
        async move { worker_state(ctx, env, secret.as_deref()) }
    })
}

/// Serves the worker service on `listener` until `stop` resolves. A worker listening on
/// another interface than the loopback one must have a secret: its requests are query
/// plans that read the data folder.
pub async fn serve_worker(
    env: Arc<RuntimeEnv>,
    listener: tokio::net::TcpListener,
    secret: Option<String>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    if secret.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "a query worker listening on {addr} needs [distributed] secret (or \
             $VOSTOK_WORKER_SECRET), the same as its servers': anyone reaching it could run \
             queries over the data folder"
        );
    }
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .add_service(worker(env, secret).into_worker_server())
        .serve_with_incoming_shutdown(incoming, stop)
        .await?;
    Ok(())
}

/// Whether an error of a distributed query is the workers' failure rather than the query's:
/// a worker unreachable or gone (gRPC transport), or refusing this server (its secret).
pub(crate) fn is_worker_failure(message: &str) -> bool {
    const SIGNS: &[&str] = &[
        "refuses requests without its secret",
        "transport error",
        "tcp connect error",
        "Connection refused",
        "connection reset",
        "broken pipe",
        "Unavailable",
        "h2 protocol error",
        // a function the workers' decoder did not find (stays_here keeps such plans here;
        // this is the second line of defence)
        "PhysicalExtensionCodec is not provided",
    ];
    SIGNS.iter().any(|s| message.contains(s))
}

/// A line for the log: how many stages a distributed plan has.
pub(super) fn stages(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut n = 0;
    let _ = plan.apply(|node| {
        if node.name().starts_with("Network") {
            n += 1;
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_http_addresses() {
        let s = |w: &[&str]| DistributedSettings {
            workers: w.iter().map(|x| x.to_string()).collect(),
            ..Default::default()
        };
        assert!(Distribution::from_settings(&s(&[]))
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        let d = Distribution::from_settings(&s(&["http://10.0.0.1:8090", "https://w.example"]))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("workers"));
        assert_eq!(d.workers().len(), 2);
        for bad in ["10.0.0.1:8090", "ftp://w.example", "http://", "not a url"] {
            let e = Distribution::from_settings(&s(&[bad])).expect_err(bad);
            assert!(e.to_string().contains("[distributed] workers"), "{e}");
        }
    }

    #[test]
    fn a_secret_is_a_header_value() {
        let h = secret_headers(Some("s3cret")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h.get(SECRET_HEADER).map(|v| v.as_bytes()),
            Some(&b"s3cret"[..])
        );
        assert!(secret_headers(None)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
        assert!(secret_headers(Some("line\nbreak")).is_err());
    }

    #[test]
    fn worker_failures_are_told_from_query_errors() {
        assert!(is_worker_failure(
            "External error: code: 'The service is currently unavailable', message: \"tcp connect error\""
        ));
        assert!(is_worker_failure(
            "Invalid or Unsupported Configuration: this query worker refuses requests without its secret"
        ));
        assert!(!is_worker_failure(
            "numeric value out of range: sn * sn * sn (line 1, column 8)"
        ));
        assert!(!is_worker_failure("Division by zero"));
    }

    #[test]
    fn tasks_go_to_the_workers_in_turn_and_are_recorded() {
        let workers: Vec<Url> = ["http://a:1", "http://b:1", "http://c:1"]
            .iter()
            .map(|u| Url::parse(u).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let rr = RoundRobin {
            workers: workers.clone(),
            next: AtomicUsize::new(0),
        };
        let routing = Arc::new(Routing::default());
        let ctx = SessionContext::new();
        let task_ctx = task_ctx_recording(&ctx, routing.clone());
        let plan: Arc<dyn ExecutionPlan> =
            Arc::new(datafusion::physical_plan::empty::EmptyExec::new(Arc::new(
                datafusion::arrow::datatypes::Schema::empty(),
            )));
        let route = |task_count| {
            let ev = RouteTasksEvent {
                task_ctx: task_ctx.clone(),
                plan: &plan,
                task_count,
            };
            match rr.handle(ev) {
                Some(Ok(r)) => r.urls,
                _ => panic!("routed"),
            }
        };
        assert_eq!(route(2), workers[0..2].to_vec());
        assert_eq!(route(2), vec![workers[2].clone(), workers[0].clone()]);
        assert_eq!(route(1), vec![workers[1].clone()]);
        assert_eq!(routing.routed().len(), 3);
        // No stage in this plan to number them by: numbered in routing order.
        let lines = routing.describe(&plan);
        assert_eq!(
            lines[1],
            "stage #2: 2 tasks: task 0 on http://c:1, task 1 on http://a:1"
        );
        assert_eq!(lines[2], "stage #3: 1 task: task 0 on http://b:1");
    }

    #[tokio::test]
    async fn a_worker_refuses_a_request_without_its_secret() {
        let env = Arc::new(RuntimeEnv::default());
        let ctx = |secret: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(s) = secret {
                headers.insert(
                    SECRET_HEADER,
                    http::HeaderValue::from_str(s).unwrap_or_else(|e| panic!("{e}")),
                );
            }
            WorkerQueryContext {
                builder: SessionStateBuilder::new().with_default_features(),
                headers,
            }
        };
        for given in [None, Some("wrong"), Some("s3cre")] {
            let e = worker_state(ctx(given), env.clone(), Some("s3cret")).expect_err("refused");
            assert!(e.to_string().contains("secret"), "{e}");
        }
        let state = worker_state(ctx(Some("s3cret")), env.clone(), Some("s3cret"))
            .unwrap_or_else(|e| panic!("{e}"));
        // ADQL's functions are there.
        assert!(state.scalar_functions().contains_key("ivo_hasword"));
        assert!(worker_state(ctx(None), env, None).is_ok());
    }
}
