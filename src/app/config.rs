//! `vostok.toml`: every key has a default, so no file is needed to start. Each part is
//! declared beside what it configures (`[tap]` in the TAP front, `[uws]` in the `uws` crate,
//! `[vospace]` in the VOSpace front); this is where they come together.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uws::UwsConfig;

use crate::dali::Service;
use crate::engine::{Limits, LimitsConfig};
use crate::protocols::tap::TapConfig;
use crate::protocols::vospace::VoSpaceConfig;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub bind: String,
    /// Where catalogs live: a local folder or an object-store URL (`s3://bucket/prefix`).
    pub data: String,
    /// Options for the object store (e.g. `aws_endpoint`, `aws_allow_http`, `aws_region`).
    pub storage_options: Vec<(String, String)>,
    /// Public base URL (e.g. `https://vo.example.org`); by default taken from each request.
    pub public_url: Option<String>,
    /// Ingest and serve the demo catalogs shipped with vostok.
    pub demo: bool,
    /// Folder holding the demo catalogs' metadata files and raw data.
    pub demo_dir: PathBuf,
    /// Service identity.
    pub service: ServiceConfig,
    /// Query limits (every protocol) and TAP uploads.
    pub tap: TapConfig,
    /// A database server for the service's own records (today: the asynchronous jobs).
    pub metadata: MetadataConfig,
    /// Asynchronous jobs (UWS: TAP queries and VOSpace transfers): job database, pools, time
    /// limits.
    pub uws: UwsConfig,
    /// VOSpace: users' folders.
    pub vospace: VoSpaceConfig,
    /// What the queries of all users together may take (memory, places, time).
    pub limits: LimitsConfig,
    /// Who may read `/metrics` beyond the loopback interface.
    pub metrics: super::metrics::MetricsConfig,
    /// The curation metadata of the registry records (`/oai`).
    pub registry: super::oai::RegistryConfig,
    /// Live publishing: how often a server looks for changes, how long replaced versions are
    /// kept, and who may publish over HTTP (`/admin`).
    pub publish: super::live::PublishConfig,
    /// Memory for cached Parquet footers, in MiB: a cone then reads and decodes no footer.
    /// Only footers actually read take room (the demo catalogs' need a few MiB); the 100M-row
    /// synthetic sky's 492 footers need ~150 MiB (docs/benchmarks.md).
    pub metadata_cache_mb: usize,
    /// Query workers (`vostok worker`) large queries are spread over.
    pub distributed: crate::engine::distributed::DistributedSettings,
}

/// `[metadata]`: a PostgreSQL database for the service's records instead of the embedded
/// SQLite files: the UWS jobs and the VOSpace records (nodes, users, tokens, groups, OIDC
/// links, transfers), which several servers may share; `[uws] database` and `[vospace]
/// database` are then unused.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// `postgres://user:password@host:port/database` (or libpq's key-value form), with
    /// libpq's TLS settings `sslmode`, `sslrootcert`, `sslcert`, `sslkey` (no sslmode: prefer,
    /// or verify-full when a certificate authority is named); `$VOSTOK_METADATA_URL`, when
    /// set, takes its place (so that the password need not be written in a file). Not set:
    /// SQLite.
    pub url: Option<String>,
    /// The certificate authorities (PEM) that sign the database server's certificate, when
    /// the URL names none (`sslrootcert`). Not set: the system's.
    pub ca_file: Option<PathBuf>,
    /// Connections to it at most, per server (plus one listening for the job changes other
    /// servers make).
    pub connections: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            url: None,
            ca_file: None,
            connections: 8,
        }
    }
}

impl MetadataConfig {
    /// The PostgreSQL database in effect, checked (its certificate files are read when it is
    /// connected to); None: the embedded SQLite files.
    pub fn postgres(&self) -> anyhow::Result<Option<uws::pgtls::Target>> {
        let Some(url) = self.url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        uws::pgtls::Target::parse(url, self.ca_file.as_deref())
            .map(Some)
            .map_err(|e| anyhow::anyhow!("[metadata] url: {e}"))
    }
}

/// Who runs the service.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Title shown to people.
    pub title: String,
    /// IVOA authority for identifiers (`ivo://AUTHORITY/...`).
    pub authority: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            title: "vostok data centre".into(),
            authority: "vostok.example".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            data: "vostok-data".into(),
            storage_options: Vec::new(),
            public_url: None,
            demo: true,
            demo_dir: default_demo_dir(),
            service: ServiceConfig::default(),
            tap: TapConfig::default(),
            metadata: MetadataConfig::default(),
            uws: UwsConfig::default(),
            vospace: VoSpaceConfig::default(),
            limits: LimitsConfig::default(),
            metrics: super::metrics::MetricsConfig::default(),
            registry: super::oai::RegistryConfig::default(),
            publish: super::live::PublishConfig::default(),
            metadata_cache_mb: 256,
            distributed: Default::default(),
        }
    }
}

/// `$VOSTOK_DEMO_DIR`, else `./data/demo` when run from a checkout, else the checkout it was built from.
fn default_demo_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VOSTOK_DEMO_DIR") {
        return PathBuf::from(d);
    }
    let here = PathBuf::from("data/demo");
    if here.join("hipparcos.hip2.toml").exists() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo"))
}

/// Whether an object-store option holds a secret (`config check` shows it as `***`):
/// object_store's secret keys, session and bearer tokens, passwords, SAS and account keys
/// (`aws_secret_access_key`, `aws_session_token`, `azure_storage_account_key`,
/// `aws_sse_customer_key_base64`, …); a key's id (`aws_access_key_id`) is not a secret.
fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "token", "password", "credential", "sas"]
        .iter()
        .any(|w| k.contains(w))
        || (k.contains("key") && !k.ends_with("_id"))
}

impl Config {
    /// Reads `path` if given, else `./vostok.toml` if present, else the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("vostok.toml")).filter(|p| p.exists()),
        };
        let mut config: Config = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| {
                    let hint = nearest_key(e.message())
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    anyhow::anyhow!("{}: {}{hint}", p.display(), e.to_string().trim_end())
                })?
            }
            None => Config::default(),
        };
        // The registry records' datestamps follow the configuration's changes.
        config.registry.config_modified = path
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
            .map(chrono::DateTime::<chrono::Utc>::from);
        if let Some(url) = std::env::var("VOSTOK_METADATA_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            config.metadata.url = Some(url);
        }
        config.metadata.postgres()?;
        Ok(config)
    }

    /// How long a replaced or dropped catalog version stays readable before it is deleted:
    /// `[publish] retention_seconds`, else a minute more than the longest a query may run
    /// (`[tap] sync_timeout`, `[uws] max_execution_duration`), so that every query that
    /// started on it has ended.
    pub fn retention(&self) -> std::time::Duration {
        let secs = self.publish.retention_seconds.unwrap_or_else(|| {
            self.tap
                .sync_timeout
                .max(self.uws.max_execution_duration)
                .saturating_add(60)
        });
        std::time::Duration::from_secs(secs)
    }

    /// The configuration in effect as TOML, every default written out (a password in a
    /// database URL as `***`), with the TLS to the database in effect as a comment.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        if let Some(url) = &shown.metadata.url {
            shown.metadata.url = Some(uws::postgres::redact(url));
        }
        for (key, value) in &mut shown.storage_options {
            if is_secret_option(key) {
                *value = "***".into();
            }
        }
        if shown.distributed.secret.is_some() {
            shown.distributed.secret = Some("***".into());
        }
        let text = toml::to_string(&shown)
            .map_err(|e| anyhow::anyhow!("the configuration cannot be shown: {e}"))?;
        let Some(target) = self.metadata.postgres()? else {
            return Ok(text);
        };
        let comment = format!("# TLS in effect: {}\n", target.describe());
        Ok(match text.find("[metadata]\n") {
            Some(at) => {
                let at = at + "[metadata]\n".len();
                format!("{}{comment}{}", &text[..at], &text[at..])
            }
            None => format!("{comment}{text}"),
        })
    }

    /// Where an SQLite database is: `configured` when set, else `file` in the data folder when
    /// it is local. A data folder in object storage holds no SQLite file, and nothing is
    /// written into the working directory: there the path must be configured (`key`).
    pub fn database(
        &self,
        configured: &Option<PathBuf>,
        file: &str,
        key: &str,
    ) -> anyhow::Result<PathBuf> {
        if let Some(p) = configured {
            return Ok(p.clone());
        }
        if let Ok(url) = url::Url::parse(&self.data) {
            if url.scheme() == "file" {
                if let Ok(p) = url.to_file_path() {
                    return Ok(p.join(file));
                }
            } else if url.scheme().len() > 1 {
                anyhow::bail!(
                    "the data folder {} is in object storage: set `{key}` in vostok.toml to \
                     the local file that holds this database",
                    self.data
                );
            }
        }
        Ok(PathBuf::from(&self.data).join(file))
    }

    /// The UWS job database file.
    pub fn uws_database(&self) -> anyhow::Result<PathBuf> {
        self.database(&self.uws.database, "uws.sqlite", "[uws] database")
    }

    /// The VOSpace database file.
    pub fn vospace_database(&self) -> anyhow::Result<PathBuf> {
        self.database(
            &self.vospace.database,
            "vospace.sqlite",
            "[vospace] database",
        )
    }

    /// What the service says about itself.
    pub fn service(&self) -> Service {
        Service {
            title: self.service.title.clone(),
            authority: self.service.authority.clone(),
            public_url: self.public_url.clone(),
            bind: self.bind.clone(),
        }
    }

    /// The query limits of `[tap]`.
    pub fn limits(&self) -> Limits {
        Limits {
            default_maxrec: self.tap.default_maxrec,
            hard_maxrec: self.tap.hard_maxrec,
            sync_timeout: self.tap.sync_timeout,
        }
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`, …": the expected key nearest to
/// `x` when it is near enough to be a slip (an edit distance of at most a third of its length,
/// and at least 1).
fn nearest_key(message: &str) -> Option<String> {
    if !message.starts_with("unknown field") {
        return None;
    }
    let mut quoted = message.split('`').skip(1).step_by(2);
    let unknown = quoted.next()?;
    let limit = (unknown.chars().count() / 3).max(1);
    quoted
        .map(|k| (strsim::levenshtein(unknown, k), k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_configuration_reads_back_as_itself() {
        let text = Config::default().to_toml().unwrap();
        assert!(text.contains("sync_timeout = 600"), "{text}");
        assert!(text.contains("[limits]"), "{text}");
        let again: Config = toml::from_str(&text).unwrap();
        assert_eq!(again.to_toml().unwrap(), text);
    }

    #[test]
    fn object_store_secrets_are_shown_as_stars() {
        let c = Config {
            data: "s3://bucket/vostok".into(),
            storage_options: [
                ("aws_access_key_id", "AKIDPUBLIC"),
                ("aws_secret_access_key", "SECRETVALUE1"),
                ("aws_session_token", "SECRETVALUE2"),
                ("azure_storage_account_key", "SECRETVALUE3"),
                ("aws_sse_customer_key_base64", "SECRETVALUE4"),
                ("aws_endpoint", "http://127.0.0.1:7480"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Config::default()
        };
        let shown = c.to_toml().unwrap();
        assert!(!shown.contains("SECRETVALUE"), "{shown}");
        assert!(shown.contains("AKIDPUBLIC"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:7480"), "{shown}");
        assert_eq!(shown.matches("\"***\"").count(), 4, "{shown}");
    }

    #[test]
    fn a_metadata_url_is_checked_and_shown_without_its_password() {
        let mut c = Config::default();
        assert!(c.metadata.postgres().unwrap().is_none());
        c.metadata.url = Some("postgresql://vo:s3cret@db.example:5432/vostok".into());
        assert!(c.metadata.postgres().unwrap().is_some());
        let shown = c.to_toml().unwrap();
        assert!(
            shown.contains("postgresql://vo:***@db.example:5432/vostok"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("[metadata]\n# TLS in effect: sslmode=prefer (no sslmode given)"),
            "{shown}"
        );
        let again: Config = toml::from_str(&shown).unwrap();
        assert_eq!(again.metadata.connections, c.metadata.connections);
        c.metadata.url = Some("postgresql://vo:s3cret@db.example/vostok?sslmode=verify-ca".into());
        c.metadata.ca_file = Some("/etc/vostok/db-ca.pem".into());
        let shown = c.to_toml().unwrap();
        assert!(
            shown.contains(
                "sslmode=verify-ca: TLS; the server's certificate must be signed by the \
                 certificate authorities in /etc/vostok/db-ca.pem ([metadata] ca_file)"
            ),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        c.metadata.url = Some("postgresql://db.example/vostok?sslmode=verify_full".into());
        let e = c.metadata.postgres().unwrap_err().to_string();
        assert!(e.contains("sslmode=verify_full is not one of"), "{e}");
        c.metadata.url = Some("mysql://db/vostok".into());
        let e = c.metadata.postgres().unwrap_err().to_string();
        assert!(e.contains("`mysql:`"), "{e}");
        c.metadata.url = Some("not a url".into());
        assert!(c.metadata.postgres().is_err());
    }

    #[test]
    fn an_unknown_key_gets_the_nearest_known_one() {
        let e = toml::from_str::<Config>("[tap]\nsync_timout = 5\n").unwrap_err();
        assert_eq!(nearest_key(e.message()).as_deref(), Some("sync_timeout"));
        let e = toml::from_str::<Config>("[tap]\nzzz = 5\n").unwrap_err();
        assert_eq!(nearest_key(e.message()), None);
    }

    #[test]
    fn databases_go_beside_local_data_and_must_be_named_for_object_storage() {
        let at = |data: &str| {
            Config {
                data: data.into(),
                ..Config::default()
            }
            .uws_database()
        };
        assert_eq!(at("/srv/vo").unwrap(), PathBuf::from("/srv/vo/uws.sqlite"));
        assert_eq!(
            at("file:///srv/vo").unwrap(),
            PathBuf::from("/srv/vo/uws.sqlite")
        );
        let e = at("s3://bucket/prefix").unwrap_err().to_string();
        assert!(e.contains("[uws] database"), "{e}");
        let mut c = Config {
            data: "s3://bucket/prefix".into(),
            ..Config::default()
        };
        c.vospace.database = Some(PathBuf::from("/var/lib/vostok/vospace.sqlite"));
        assert_eq!(
            c.vospace_database().unwrap(),
            PathBuf::from("/var/lib/vostok/vospace.sqlite")
        );
    }
}
