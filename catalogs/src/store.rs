//! Object storage: a local folder by default, `s3://bucket/prefix` (and the other
//! `object_store` schemes) by URL. Nothing here assumes a POSIX file system.

use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::Error;

/// An object store, the URL DataFusion knows it by, and the prefix everything lives under.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Scheme and authority (`file://`, `s3://bucket`) under which it is registered with DataFusion.
    pub url: ObjectStoreUrl,
    /// Prefix of the data folder inside the store.
    pub prefix: Path,
}

impl Storage {
    /// Opens a location: a local path (created if missing) or a URL such as `s3://bucket/prefix`.
    /// `options` are passed to the store builder (e.g. `aws_endpoint`, `aws_allow_http`).
    pub fn open(location: &str, options: &[(String, String)]) -> Result<Self, Error> {
        if let Ok(url) = Url::parse(location) {
            if url.scheme().len() > 1 && url.scheme() != "file" {
                let (store, prefix) = object_store::parse_url_opts(&url, options.iter().cloned())?;
                let base = format!("{}://{}", url.scheme(), url.authority());
                let url = ObjectStoreUrl::parse(&base)?;
                return Ok(Storage {
                    store: Arc::from(store),
                    url,
                    prefix,
                });
            }
            if url.scheme() == "file" {
                let path = url
                    .to_file_path()
                    .map_err(|_| Error::Layout(format!("bad file URL {location}")))?;
                return Self::local(&path);
            }
        }
        Self::local(std::path::Path::new(location))
    }

    /// Opens a local folder, creating it when missing.
    pub fn local(path: &std::path::Path) -> Result<Self, Error> {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::Layout(format!("cannot create {}: {e}", path.display())))?;
        let abs = std::fs::canonicalize(path)
            .map_err(|e| Error::Layout(format!("cannot resolve {}: {e}", path.display())))?;
        let prefix = Path::from_absolute_path(&abs)
            .map_err(|e| Error::Layout(format!("bad path {}: {e}", abs.display())))?;
        Ok(Storage {
            store: Arc::new(LocalFileSystem::new()),
            url: ObjectStoreUrl::local_filesystem(),
            prefix,
        })
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
