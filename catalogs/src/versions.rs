//! Versions of a published catalog, and the publication marker servers watch.
//!
//! A catalog's folder (`catalogs/<schema>.<table>/`) holds one or more versions:
//!
//! ```text
//! catalogs/<name>/current.json     {"version": 3}: which version is published (the pointer)
//! catalogs/<name>/v3/…             version 3: a whole HATS catalog (hats.properties, dataset/…)
//! catalogs/<name>/v2/…             a retired version, kept until no query can read it
//! catalogs/<name>/hats.properties  version 0: a catalog written before versions existed
//! catalogs/_publication.json       the marker: rewritten last by every publication change
//! ```
//!
//! A catalog's first version is written in the folder's root (version 0: the layout LSDB and
//! earlier vostok versions read), under a pointer that says it is being written. A
//! replacement is written beside the published version, as `v<N>`. Either is published by
//! switching the pointer (one object put: atomic on a local folder and on S3); then the
//! marker is rewritten. A server
//! polls the marker (one small GET) and, when it changed, opens the catalogs the pointers
//! name and swaps what it serves. A folder without pointer is version 0 (its root holds the
//! catalog), so data folders written before versions are served as they are. A dropped
//! catalog's pointer says `"dropped": true`. Retired versions (every version older than the
//! published one, or all of them once dropped) are deleted by [`collect`] once the pointer
//! has been in place longer than the retention: queries that started on them have ended.

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use storage::Storage;

use crate::Error;

/// The folder all catalogs are in.
pub const CATALOGS: &str = "catalogs";
/// The pointer's file name, in a catalog's folder.
pub const POINTER: &str = "current.json";
/// The publication marker, relative to the data folder.
pub const MARKER: &str = "catalogs/_publication.json";

/// What a catalog's pointer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The published version (0: the folder's root).
    pub version: u64,
    /// The catalog is no longer published; `version` is the last one it had.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dropped: bool,
    /// A first version is being written in the folder's root (version 0): nothing is
    /// published yet, and nothing may be collected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writing: bool,
}

impl Pointer {
    fn published(version: u64) -> Pointer {
        Pointer {
            version,
            dropped: false,
            writing: false,
        }
    }
}

/// The folder of catalog `name` (`schema.table`).
pub fn folder(name: &str) -> String {
    format!("{CATALOGS}/{name}")
}

/// The root of version `version` of the catalog in `folder`.
pub fn version_root(folder: &str, version: u64) -> String {
    if version == 0 {
        folder.to_string()
    } else {
        format!("{folder}/v{version}")
    }
}

/// The version a folder name below a catalog's folder stands for (`v12` → 12).
pub fn parse_version(segment: &str) -> Option<u64> {
    let digits = segment.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|v| *v > 0)
}

/// The pointer of the catalog in `folder`, and when it was written; `None` without one.
pub async fn pointer(
    storage: &Storage,
    folder: &str,
) -> Result<Option<(Pointer, chrono::DateTime<chrono::Utc>)>, Error> {
    let path = storage.path(&format!("{folder}/{POINTER}"));
    let got = match storage.store.get(&path).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let written = got.meta.last_modified;
    let bytes = got.bytes().await?;
    let p: Pointer = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Layout(format!("{folder}/{POINTER}: {e}")))?;
    Ok(Some((p, written)))
}

/// The root of the published version of the catalog in `folder`; `None` when it is dropped
/// or holds no catalog.
pub async fn current_root(storage: &Storage, folder: &str) -> Result<Option<String>, Error> {
    let root = match pointer(storage, folder).await? {
        Some((p, _)) if p.dropped || p.writing => return Ok(None),
        Some((p, _)) => version_root(folder, p.version),
        None => folder.to_string(),
    };
    let complete = storage
        .exists(&storage.path(&format!("{root}/hats.properties")))
        .await?;
    Ok(complete.then_some(root))
}

/// The versions found in `folder` (its `v<N>` sub-folders, and 0 when the root holds files
/// other than the pointer).
async fn listed_versions(storage: &Storage, folder: &str) -> Result<(Vec<u64>, bool), Error> {
    let base = storage.path(folder);
    let listing = match storage.store.list_with_delimiter(Some(&base)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok((Vec::new(), false)),
        Err(e) => return Err(e.into()),
    };
    let versions = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().and_then(parse_version))
        .collect();
    let root_files = listing
        .objects
        .iter()
        .any(|o| o.location.filename() != Some(POINTER))
        || listing
            .common_prefixes
            .iter()
            .any(|p| p.filename().is_some_and(|f| parse_version(f).is_none()));
    Ok((versions, root_files))
}

/// The version a new write of the catalog in `folder` goes to: above every version the
/// folder has had (its pointer's included), so that a version number is never reused while
/// a retired one may still be read.
pub async fn next_version(storage: &Storage, folder: &str) -> Result<u64, Error> {
    let (versions, _) = listed_versions(storage, folder).await?;
    let pointed = pointer(storage, folder).await?.map(|(p, _)| p.version);
    Ok(versions
        .into_iter()
        .chain(pointed)
        .max()
        .unwrap_or(0)
        .saturating_add(1))
}

/// Publishes version `version` of the catalog in `folder` (it must be complete): the
/// pointer is rewritten in one put.
pub async fn switch(storage: &Storage, folder: &str, version: u64) -> Result<(), Error> {
    write_pointer(storage, folder, Pointer::published(version)).await
}

/// Where a new write of the catalog in `folder` goes: `None` when one is published and
/// `replace` is false. A replacement goes to a new version beside the published one; a first
/// version (a folder that is empty, or holds only the leftovers of an interrupted first
/// write) to the folder's root, as version 0, marked as being written until [`switch`]
/// publishes it; after a drop, to a new version (the dropped one may still be read).
pub async fn begin(storage: &Storage, folder: &str, replace: bool) -> Result<Option<u64>, Error> {
    if current_root(storage, folder).await?.is_some() {
        if !replace {
            return Ok(None);
        }
        return next_version(storage, folder).await.map(Some);
    }
    match pointer(storage, folder).await? {
        Some((p, _)) if p.dropped => next_version(storage, folder).await.map(Some),
        _ => {
            // Nothing published: what is there is an interrupted write.
            storage.delete_prefix(folder).await?;
            write_pointer(
                storage,
                folder,
                Pointer {
                    writing: true,
                    ..Pointer::published(0)
                },
            )
            .await?;
            Ok(Some(0))
        }
    }
}

async fn write_pointer(storage: &Storage, folder: &str, p: Pointer) -> Result<(), Error> {
    let text =
        serde_json::to_vec(&p).map_err(|e| Error::Layout(format!("{folder}/{POINTER}: {e}")))?;
    storage
        .put(&storage.path(&format!("{folder}/{POINTER}")), text)
        .await?;
    Ok(())
}

/// Stops publishing the catalog in `folder`; false when it was not published. Its files stay
/// until [`collect`] finds them retired for longer than the retention.
pub async fn retire(storage: &Storage, folder: &str) -> Result<bool, Error> {
    let version = match pointer(storage, folder).await? {
        Some((p, _)) if p.dropped || p.writing => return Ok(false),
        Some((p, _)) => p.version,
        None => {
            if current_root(storage, folder).await?.is_none() {
                return Ok(false);
            }
            0
        }
    };
    write_pointer(
        storage,
        folder,
        Pointer {
            dropped: true,
            ..Pointer::published(version)
        },
    )
    .await?;
    Ok(true)
}

/// Rewrites the publication marker (last step of every change): servers watching it reload.
/// `what` says what changed, for whoever reads the file.
pub async fn announce(storage: &Storage, what: &str) -> Result<(), Error> {
    let previous = read_marker(storage)
        .await?
        .and_then(|b| serde_json::from_slice::<Marker>(&b).ok())
        .map(|m| m.generation)
        .unwrap_or(0);
    let marker = Marker {
        generation: previous.saturating_add(1),
        changed: what.to_string(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let text = serde_json::to_vec(&marker).map_err(|e| Error::Layout(format!("{MARKER}: {e}")))?;
    storage.put(&storage.path(MARKER), text).await?;
    Ok(())
}

/// The publication marker's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    /// Incremented by each change (two writers at once may write the same number: the
    /// whole content, with `at`, is what a server compares).
    pub generation: u64,
    /// What changed last.
    #[serde(default)]
    pub changed: String,
    /// When (RFC 3339, nanoseconds).
    #[serde(default)]
    pub at: String,
}

/// The marker's bytes; `None` when nothing was ever announced.
pub async fn read_marker(storage: &Storage) -> Result<Option<Bytes>, Error> {
    match storage.get(&storage.path(MARKER)).await {
        Ok(b) => Ok(Some(b)),
        Err(storage::Error::Store(object_store::Error::NotFound { .. })) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The generation a marker's bytes say (0 when unreadable).
pub fn generation(marker: Option<&[u8]>) -> u64 {
    marker
        .and_then(|b| serde_json::from_slice::<Marker>(b).ok())
        .map(|m| m.generation)
        .unwrap_or(0)
}

/// Every catalog folder with a published version: (`schema.table` folder name, root).
pub async fn published(storage: &Storage) -> Result<Vec<(String, String)>, Error> {
    let base = storage.path(CATALOGS);
    let listing = match storage.store.list_with_delimiter(Some(&base)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let folder = folder(&name);
        if let Some(root) = current_root(storage, &folder).await? {
            out.push((name, root));
        }
    }
    Ok(out)
}

/// What [`collect`] should delete in a catalog folder: given the folder's `v<N>` versions,
/// whether its root holds version-0 files, and its pointer. Versions newer than the pointer's
/// are being written and are kept.
pub fn retired(versions: &[u64], root_files: bool, p: Pointer) -> (Vec<u64>, bool) {
    if p.writing {
        return (Vec::new(), false);
    }
    let stale = |v: u64| v < p.version || (p.dropped && v == p.version);
    let mut gone: Vec<u64> = versions.iter().copied().filter(|v| stale(*v)).collect();
    gone.sort_unstable();
    (gone, root_files && stale(0))
}

/// Deletes the retired versions of the catalog in `folder` when its pointer was written more
/// than `retention` ago; a dropped catalog's pointer goes too once nothing else is left.
/// Returns how many objects were deleted.
pub async fn collect(
    storage: &Storage,
    folder: &str,
    retention: std::time::Duration,
) -> Result<usize, Error> {
    let Some((p, written)) = pointer(storage, folder).await? else {
        return Ok(0);
    };
    let age = chrono::Utc::now().signed_duration_since(written);
    if age.to_std().ok().is_none_or(|a| a < retention) {
        return Ok(0);
    }
    let (versions, root_files) = listed_versions(storage, folder).await?;
    let (gone, root) = retired(&versions, root_files, p);
    let mut deleted = 0;
    for v in &gone {
        deleted += storage.delete_prefix(&version_root(folder, *v)).await?;
    }
    if root {
        // Version 0: every object of the folder but the pointer and the v<N> folders.
        let base = storage.path(folder);
        let listing = storage.store.list_with_delimiter(Some(&base)).await?;
        for o in &listing.objects {
            if o.location.filename() != Some(POINTER) {
                storage.store.delete(&o.location).await?;
                deleted += 1;
            }
        }
        for sub in &listing.common_prefixes {
            if let Some(name) = sub.filename().filter(|n| parse_version(n).is_none()) {
                deleted += storage.delete_prefix(&format!("{folder}/{name}")).await?;
            }
        }
    }
    // What is left (a local folder keeps the emptied directories: not listed again).
    let left = versions.iter().any(|v| !gone.contains(v));
    if p.dropped && !left && (root || !root_files) {
        let path: Path = storage.path(&format!("{folder}/{POINTER}"));
        storage.store.delete(&path).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// [`collect`] over every catalog folder; failures are logged, not returned.
pub async fn collect_all(storage: &Storage, retention: std::time::Duration) -> usize {
    let base = storage.path(CATALOGS);
    let Ok(listing) = storage.store.list_with_delimiter(Some(&base)).await else {
        return 0;
    };
    let mut deleted = 0;
    for p in &listing.common_prefixes {
        let Some(name) = p.filename() else { continue };
        match collect(storage, &folder(name), retention).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!("{name}: {n} objects of retired versions deleted");
                }
                deleted += n;
            }
            Err(e) => tracing::warn!("{name}: retired versions not deleted: {e}"),
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_folders_are_v_and_a_positive_number() {
        assert_eq!(parse_version("v1"), Some(1));
        assert_eq!(parse_version("v042"), Some(42));
        assert_eq!(parse_version("v0"), None);
        assert_eq!(parse_version("v"), None);
        assert_eq!(parse_version("dataset"), None);
        assert_eq!(parse_version("v1a"), None);
        assert_eq!(parse_version("v-1"), None);
        assert_eq!(version_root("catalogs/a.b", 0), "catalogs/a.b");
        assert_eq!(version_root("catalogs/a.b", 7), "catalogs/a.b/v7");
    }

    #[test]
    fn only_versions_older_than_the_published_one_are_retired() {
        let p = Pointer::published(3);
        // v4 is being written: kept; v0 (the root's files), v1 and v2 retired.
        assert_eq!(retired(&[1, 2, 3, 4], true, p), (vec![1, 2], true));
        assert_eq!(retired(&[3], false, p), (vec![], false));
        let dropped = Pointer {
            dropped: true,
            ..Pointer::published(3)
        };
        assert_eq!(retired(&[2, 3, 5], false, dropped), (vec![2, 3], false));
        let legacy_dropped = Pointer {
            dropped: true,
            ..Pointer::published(0)
        };
        assert_eq!(retired(&[], true, legacy_dropped), (vec![], true));
        assert_eq!(retired(&[1], false, legacy_dropped), (vec![], false));
        // A first version being written: nothing is collected.
        let writing = Pointer {
            writing: true,
            ..Pointer::published(0)
        };
        assert_eq!(retired(&[1], true, writing), (vec![], false));
    }

    fn temp_storage() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = Storage::local(dir.path(), storage::Missing::Refuse).expect("storage");
        (dir, s)
    }

    async fn put(s: &Storage, rel: &str) {
        s.put(&s.path(rel), b"x".to_vec()).await.expect("put");
    }

    #[tokio::test]
    async fn a_folder_without_pointer_is_version_zero_and_versions_follow_it() {
        let (_d, s) = temp_storage();
        let f = folder("a.b");
        assert_eq!(current_root(&s, &f).await.expect("root"), None);
        put(&s, "catalogs/a.b/hats.properties").await;
        put(&s, "catalogs/a.b/dataset/Norder=0/Dir=0/Npix=1.parquet").await;
        assert_eq!(
            current_root(&s, &f).await.expect("root").as_deref(),
            Some("catalogs/a.b")
        );
        assert_eq!(next_version(&s, &f).await.expect("next"), 1);
        put(&s, "catalogs/a.b/v1/hats.properties").await;
        // Written but not switched to: version 0 is still the published one.
        assert_eq!(
            current_root(&s, &f).await.expect("root").as_deref(),
            Some("catalogs/a.b")
        );
        switch(&s, &f, 1).await.expect("switch");
        assert_eq!(
            current_root(&s, &f).await.expect("root").as_deref(),
            Some("catalogs/a.b/v1")
        );
        assert_eq!(
            published(&s).await.expect("published"),
            vec![("a.b".to_string(), "catalogs/a.b/v1".to_string())]
        );
        // Nothing is deleted within the retention; afterwards version 0 goes, v1 stays.
        assert_eq!(
            collect(&s, &f, std::time::Duration::from_secs(3600))
                .await
                .expect("collect"),
            0
        );
        assert_eq!(
            collect(&s, &f, std::time::Duration::ZERO)
                .await
                .expect("collect"),
            2
        );
        assert!(s
            .exists(&s.path("catalogs/a.b/v1/hats.properties"))
            .await
            .expect("exists"));
        assert!(!s
            .exists(&s.path("catalogs/a.b/hats.properties"))
            .await
            .expect("exists"));
        assert_eq!(next_version(&s, &f).await.expect("next"), 2);
    }

    #[tokio::test]
    async fn a_dropped_catalog_is_not_published_and_its_numbers_are_not_reused() {
        let (_d, s) = temp_storage();
        let f = folder("a.b");
        put(&s, "catalogs/a.b/v1/hats.properties").await;
        switch(&s, &f, 1).await.expect("switch");
        assert!(retire(&s, &f).await.expect("retire"));
        assert!(!retire(&s, &f).await.expect("retire again"));
        assert_eq!(current_root(&s, &f).await.expect("root"), None);
        assert!(published(&s).await.expect("published").is_empty());
        assert_eq!(next_version(&s, &f).await.expect("next"), 2);
        // Once collected, the folder is gone, pointer included.
        collect(&s, &f, std::time::Duration::ZERO)
            .await
            .expect("collect");
        assert!(pointer(&s, &f).await.expect("pointer").is_none());
        assert!(!retire(&s, &f).await.expect("nothing to drop"));
    }

    #[tokio::test]
    async fn a_first_version_goes_to_the_root_and_is_published_only_when_switched_to() {
        let (_d, s) = temp_storage();
        let f = folder("a.b");
        // The leftovers of an interrupted first write are cleared.
        put(&s, "catalogs/a.b/dataset/Norder=0/Dir=0/Npix=1.parquet").await;
        assert_eq!(begin(&s, &f, false).await.expect("begin"), Some(0));
        assert!(!s
            .exists(&s.path("catalogs/a.b/dataset/Norder=0/Dir=0/Npix=1.parquet"))
            .await
            .expect("exists"));
        put(&s, "catalogs/a.b/hats.properties").await;
        // Complete files, but not switched to: not published, nothing to drop or collect.
        assert_eq!(current_root(&s, &f).await.expect("root"), None);
        assert!(!retire(&s, &f).await.expect("retire"));
        assert_eq!(
            collect(&s, &f, std::time::Duration::ZERO)
                .await
                .expect("collect"),
            0
        );
        switch(&s, &f, 0).await.expect("switch");
        assert_eq!(
            current_root(&s, &f).await.expect("root").as_deref(),
            Some("catalogs/a.b")
        );
        // Published: refused unless replacing, which goes beside it.
        assert_eq!(begin(&s, &f, false).await.expect("begin"), None);
        assert_eq!(begin(&s, &f, true).await.expect("begin"), Some(1));
        // After a drop, a new version (the dropped one may still be read).
        assert!(retire(&s, &f).await.expect("retire"));
        assert_eq!(begin(&s, &f, false).await.expect("begin"), Some(1));
    }

    #[tokio::test]
    async fn the_marker_counts_changes() {
        let (_d, s) = temp_storage();
        assert_eq!(read_marker(&s).await.expect("marker"), None);
        announce(&s, "a.b").await.expect("announce");
        let first = read_marker(&s).await.expect("marker");
        assert_eq!(generation(first.as_deref()), 1);
        announce(&s, "a.b").await.expect("announce");
        let second = read_marker(&s).await.expect("marker");
        assert_eq!(generation(second.as_deref()), 2);
        assert_ne!(first, second);
    }
}
