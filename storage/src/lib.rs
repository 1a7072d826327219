//! Object storage: a local folder by default, `s3://bucket/prefix` (and the other
//! `object_store` schemes) by URL. Catalogs, stored products, job results and VOSpace bytes all
//! live below one [`Storage`] prefix, in the same layout whatever the store. Nothing here
//! assumes a POSIX file system.

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

/// What can go wrong opening or using the storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location cannot be opened (missing local folder, bad URL).
    #[error("{0}")]
    Location(String),
    /// The object store failed.
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
}

/// What a failed storage operation means for whoever asked for the object, so that a caller
/// can answer with the right HTTP status (404, 403, 503 or 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// There is no such object: absent, a "folder", a path below a file, a path that cannot
    /// name an object.
    NotFound,
    /// The store refuses the server access to it (file permissions, bucket policy,
    /// credentials).
    Denied,
    /// The store could not be reached or did not answer in time: worth retrying.
    Transient,
    /// Anything else: a fault of the server or of its storage.
    Broken,
}

impl Failure {
    /// What `e` means (see [`Failure`]). A remote store's generic error (a 5xx after its
    /// retries, a timeout, a connection that failed) is transient; a local file system's is
    /// read from the `io::Error` behind it.
    pub fn of(e: &object_store::Error) -> Failure {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } | E::InvalidPath { .. } => Failure::NotFound,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => Failure::Denied,
            E::Generic { store, .. } => match io_kind(e) {
                Some(kind) => Failure::of_io(kind),
                None if *store == "LocalFileSystem" => Failure::Broken,
                None => Failure::Transient,
            },
            _ => Failure::Broken,
        }
    }

    /// What an I/O error of this kind means.
    pub fn of_io(kind: std::io::ErrorKind) -> Failure {
        use std::io::ErrorKind as K;
        match kind {
            // A path through a file ("x.fits/properties") names nothing, as does a name the
            // file system cannot hold.
            K::NotFound | K::NotADirectory | K::IsADirectory | K::InvalidFilename => {
                Failure::NotFound
            }
            K::PermissionDenied => Failure::Denied,
            K::TimedOut
            | K::Interrupted
            | K::WouldBlock
            | K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::ResourceBusy
            | K::StaleNetworkFileHandle => Failure::Transient,
            _ => Failure::Broken,
        }
    }
}

/// The kind of the first `io::Error` in `e`'s chain of sources.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// Whether [`Storage::open`] may create a missing local folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A missing local folder is an error (the commands that only read or add to existing
    /// data: a mistyped path must not become a new, empty data folder).
    Refuse,
    /// A missing local folder is created (a first `serve`, an `ingest` into a new folder).
    Create,
}

/// An object store, the URL of its root, and the prefix everything lives under.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Scheme and authority of the store's root (`file:///`, `s3://bucket`): what DataFusion
    /// registers it under.
    pub url: Url,
    /// Prefix of the data folder inside the store.
    pub prefix: Path,
}

impl Storage {
    /// Opens a location: a local path or a URL such as `s3://bucket/prefix`. `options` are
    /// passed to the store builder (e.g. `aws_endpoint`, `aws_allow_http`).
    pub fn open(
        location: &str,
        options: &[(String, String)],
        missing: Missing,
    ) -> Result<Self, Error> {
        if let Ok(url) = Url::parse(location) {
            if url.scheme().len() > 1 && url.scheme() != "file" {
                let (store, prefix) = object_store::parse_url_opts(&url, options.iter().cloned())?;
                let base = format!("{}://{}", url.scheme(), url.authority());
                let root = Url::parse(&base)
                    .map_err(|e| Error::Location(format!("bad storage URL {location}: {e}")))?;
                return Ok(Storage {
                    store: Arc::from(store),
                    url: root,
                    prefix,
                });
            }
            if url.scheme() == "file" {
                let path = url
                    .to_file_path()
                    .map_err(|_| Error::Location(format!("bad file URL {location}")))?;
                return Self::local(&path, missing);
            }
        }
        Self::local(std::path::Path::new(location), missing)
    }

    /// Opens a local folder; a missing one is created or refused as `missing` says.
    pub fn local(path: &std::path::Path, missing: Missing) -> Result<Self, Error> {
        if !path.is_dir() {
            match missing {
                Missing::Create => std::fs::create_dir_all(path).map_err(|e| {
                    Error::Location(format!("cannot create {}: {e}", path.display()))
                })?,
                Missing::Refuse if path.exists() => {
                    return Err(Error::Location(format!(
                        "{} is not a folder",
                        path.display()
                    )))
                }
                Missing::Refuse => {
                    return Err(Error::Location(format!(
                        "there is no data folder at {} (check --data-dir or `data` in vostok.toml)",
                        path.display()
                    )))
                }
            }
        }
        let abs = std::fs::canonicalize(path)
            .map_err(|e| Error::Location(format!("cannot resolve {}: {e}", path.display())))?;
        let prefix = Path::from_absolute_path(&abs)
            .map_err(|e| Error::Location(format!("bad path {}: {e}", abs.display())))?;
        let url = Url::parse("file:///").map_err(|e| Error::Location(format!("file URL: {e}")))?;
        Ok(Storage {
            store: Arc::new(LocalFileSystem::new()),
            url,
            prefix,
        })
    }

    /// Whether the store is a local file system.
    pub fn is_local(&self) -> bool {
        self.url.scheme() == "file"
    }

    /// A path below the prefix.
    pub fn path(&self, rel: &str) -> Path {
        let mut p = self.prefix.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.join(part);
        }
        p
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &Path) -> Result<bytes::Bytes, Error> {
        Ok(self.store.get(path).await?.bytes().await?)
    }

    /// Writes a whole object.
    pub async fn put(&self, path: &Path, data: Vec<u8>) -> Result<(), Error> {
        self.store.put(path, data.into()).await?;
        Ok(())
    }

    /// Deletes every object under `rel` (a folder below the prefix); returns how many.
    pub async fn delete_prefix(&self, rel: &str) -> Result<usize, Error> {
        use futures::{StreamExt, TryStreamExt};
        let base = self.path(rel);
        let paths: Vec<Path> = self
            .store
            .list(Some(&base))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        let n = paths.len();
        let mut deleted = self
            .store
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(r) = deleted.next().await {
            r?;
        }
        Ok(n)
    }

    /// Whether the store answers: a listing of the top level succeeds (readiness checks).
    pub async fn reachable(&self) -> bool {
        self.store
            .list_with_delimiter(Some(&self.path("")))
            .await
            .is_ok()
    }

    /// Whether an object exists.
    pub async fn exists(&self, path: &Path) -> Result<bool, Error> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_local_folder_is_refused_unless_creation_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder");
        let e = Storage::local(&missing, Missing::Refuse).unwrap_err();
        assert!(e.to_string().contains("there is no data folder"), "{e}");
        assert!(!missing.exists(), "refusing must not create it");
        let s = Storage::local(&missing, Missing::Create).unwrap();
        assert!(missing.is_dir());
        assert!(s.is_local());
        assert_eq!(s.url.as_str(), "file:///");
        // Now it exists: refusing opens it.
        Storage::local(&missing, Missing::Refuse).unwrap();
        // A file is not a data folder.
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(Storage::local(&file, Missing::Create).is_err());
    }

    #[tokio::test]
    async fn objects_round_trip_below_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path(), Missing::Refuse).unwrap();
        let p = s.path("a/b//c.txt");
        assert!(!s.exists(&p).await.unwrap());
        s.put(&p, b"hello".to_vec()).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap().as_ref(), b"hello");
        assert!(dir.path().join("a/b/c.txt").is_file());
        assert_eq!(s.delete_prefix("a").await.unwrap(), 1);
        assert!(!s.exists(&p).await.unwrap());
    }

    #[tokio::test]
    async fn failures_say_what_a_caller_should_answer() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path(), Missing::Refuse).unwrap();
        s.put(&s.path("a/file.fits"), b"x".to_vec()).await.unwrap();
        let head = |rel: &str| {
            let p = s.path(rel);
            let store = s.store.clone();
            async move { store.head(&p).await.unwrap_err() }
        };
        // Absent, a folder, and a path through a file (what Aladin asks for: x.fits/properties).
        for rel in [
            "a/none.fits",
            "a",
            "a/file.fits/properties",
            "a/file.fits/x/y",
        ] {
            let e = head(rel).await;
            assert_eq!(Failure::of(&e), Failure::NotFound, "{rel}: {e}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let locked = dir.path().join("locked");
            std::fs::create_dir(&locked).unwrap();
            std::fs::write(locked.join("f"), b"x").unwrap();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
            // root reads whatever the permissions say: only check where they hold.
            if std::fs::read(locked.join("f")).is_err() {
                let e = s.store.get(&s.path("locked/f")).await.unwrap_err();
                assert_eq!(Failure::of(&e), Failure::Denied, "{e}");
            }
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let remote = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert_eq!(Failure::of(&remote), Failure::Transient);
        let timeout = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        };
        assert_eq!(Failure::of(&timeout), Failure::Transient);
        let disk = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::other("input/output error")),
        };
        assert_eq!(Failure::of(&disk), Failure::Broken);
    }

    #[test]
    fn urls_keep_their_root_and_prefix() {
        let s = Storage::open(
            "s3://bucket/some/prefix",
            &[("aws_region".into(), "us-east-1".into())],
            Missing::Refuse,
        )
        .unwrap();
        assert_eq!(s.url.as_str(), "s3://bucket");
        assert_eq!(s.prefix.as_ref(), "some/prefix");
        assert!(!s.is_local());
    }
}
