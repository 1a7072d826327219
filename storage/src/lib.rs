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
