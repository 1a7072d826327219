//! `vostok.toml`: every key has a default, so no file is needed to start.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
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
    /// Service identity and limits.
    pub service: ServiceConfig,
    /// TAP limits.
    pub tap: TapConfig,
    /// Asynchronous TAP jobs (UWS): job database, pool, time limits.
    pub uws: crate::jobs::UwsConfig,
    /// VOSpace: users' folders.
    pub vospace: VoSpaceConfig,
    /// Memory for cached Parquet footers, in MiB: a cone then reads and decodes no footer.
    /// Only footers actually read take room (the demo catalogs' need a few MiB); the 100M-row
    /// synthetic sky's 492 footers need ~150 MiB (docs/benchmarks.md).
    pub metadata_cache_mb: usize,
}

impl Config {
    /// Where an SQLite database goes by default: `file` in the data folder when it is local,
    /// `remote` in the working directory when the data folder is an object-store URL (an object
    /// store holds no SQLite file: the database stays on this machine).
    pub fn local_database(&self, file: &str, remote: &str) -> PathBuf {
        if let Ok(url) = url::Url::parse(&self.data) {
            if url.scheme() == "file" {
                if let Ok(p) = url.to_file_path() {
                    return p.join(file);
                }
            } else if url.scheme().len() > 1 {
                return PathBuf::from(remote);
            }
        }
        PathBuf::from(&self.data).join(file)
    }

    /// The VOSpace database file.
    pub fn vospace_database(&self) -> PathBuf {
        self.vospace
            .database
            .clone()
            .unwrap_or_else(|| self.local_database("vospace.sqlite", "vostok-vospace.sqlite"))
    }
}

/// VOSpace settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoSpaceConfig {
    /// The node and user database (SQLite file). Default: `<data>/vospace.sqlite` when the data
    /// folder is local, `./vostok-vospace.sqlite` when it is an object-store URL (the bytes
    /// always go to the data folder's object store, under `vospace/`).
    pub database: Option<PathBuf>,
    /// Quota of a new user, in bytes (`vostok user add --quota` overrides; 0: none).
    pub default_quota: u64,
    /// Largest body of a node or transfer document, in bytes.
    pub max_document_bytes: usize,
    /// How long a negotiated transfer endpoint (a pre-authorised data URL) stays valid, seconds.
    pub transfer_lifetime: u64,
    /// OpenID Connect login (`[vospace.oidc]`): JWTs of this issuer are accepted as bearer
    /// tokens beside vostok's own; absent: off.
    #[serde(default)]
    pub oidc: Option<crate::vospace::oidc::OidcConfig>,
}

impl Default for VoSpaceConfig {
    fn default() -> Self {
        VoSpaceConfig {
            database: None,
            default_quota: 10 * 1024 * 1024 * 1024,
            max_document_bytes: 1024 * 1024,
            transfer_lifetime: 24 * 3600,
            oidc: None,
        }
    }
}

/// Who runs the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Title shown to people.
    pub title: String,
    /// IVOA authority for identifiers (`ivo://AUTHORITY/...`).
    pub authority: String,
}

/// TAP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TapConfig {
    /// Rows returned when the client gives no MAXREC.
    pub default_maxrec: u64,
    /// Largest MAXREC honoured.
    pub hard_maxrec: u64,
    /// Seconds a synchronous query may run before it is stopped (0: no limit); longer
    /// queries belong in asynchronous jobs (`[uws]`).
    pub sync_timeout: u64,
    /// Largest total size in bytes of the tables uploaded with one query (TAP_UPLOAD; the
    /// `uploadLimit` of /tap/capabilities). Uploads are held in memory while the query runs.
    pub upload_max_bytes: u64,
    /// Largest number of rows of one uploaded table.
    pub upload_max_rows: u64,
    /// Hosts from which `UPLOAD=name,http(s)://host/...` tables may be fetched (exact host
    /// names, case-insensitive). Empty (the default): URL uploads are refused.
    pub upload_url_hosts: Vec<String>,
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
            uws: crate::jobs::UwsConfig::default(),
            vospace: VoSpaceConfig::default(),
            metadata_cache_mb: 256,
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

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            title: "vostok data centre".into(),
            authority: "vostok.example".into(),
        }
    }
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            default_maxrec: 100_000,
            hard_maxrec: 10_000_000,
            sync_timeout: 600,
            upload_max_bytes: 64 * 1024 * 1024,
            upload_max_rows: 1_000_000,
            upload_url_hosts: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path` if given, else `./vostok.toml` if present, else the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("vostok.toml")).filter(|p| p.exists()),
        };
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
            }
            None => Ok(Config::default()),
        }
    }
}
