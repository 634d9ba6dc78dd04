//! WALs on a store of their own: [`SplitStore`] shows two object stores as
//! one, sending every path under the database's `wal/` directory to the WAL
//! store (under a root of its own) and everything else to the main store.
//!
//! The engine names objects as it always does (`<root>/wal/<id>.sst`,
//! `<root>/manifest/...`); only where they are kept changes. The protocol
//! sees one namespace, so nothing in it, or in the model, depends on the
//! split: a WAL's create-if-absent is still answered by the one store that
//! holds WALs, which is all the fencing argument needs (spec: "Recovery and
//! fencing"), and that store gets the compare-and-set probe too.

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::sync::StdArc;

/// Two stores as one: WALs in `wal`, the rest in `main`.
#[derive(Debug)]
pub struct SplitStore {
    main: StdArc<dyn ObjectStore>,
    wal: StdArc<dyn ObjectStore>,
    /// The WAL directory as the engine names it: `<root>/wal`.
    here: Path,
    /// Where it is kept in `wal`: `<wal root>/wal`.
    there: Path,
}

impl SplitStore {
    /// Keeps `<root>/wal/...` in `wal` as `<wal_root>/wal/...`, everything
    /// else in `main` under its own name.
    pub fn new(main: StdArc<dyn ObjectStore>, root: &Path, wal: StdArc<dyn ObjectStore>, wal_root: &Path) -> Self {
        Self { main, wal, here: root.clone().join("wal"), there: wal_root.clone().join("wal") }
    }

    /// Where `path` is kept: the store, and its name there.
    fn route(&self, path: &Path) -> (&StdArc<dyn ObjectStore>, Path) {
        match path.prefix_match(&self.here) {
            Some(rest) => (&self.wal, rest.fold(self.there.clone(), |p, part| p.join(part))),
            None => (&self.main, path.clone()),
        }
    }

    /// The engine's name of a path listed in the WAL store.
    fn back(here: &Path, there: &Path, path: &Path) -> Path {
        match path.prefix_match(there) {
            Some(rest) => rest.fold(here.clone(), |p, part| p.join(part)),
            None => path.clone(),
        }
    }

    /// The WAL store's listing of `prefix` (a path under the WAL directory,
    /// or the directory itself), under the engine's names.
    fn list_wal(&self, prefix: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let (_, there_prefix) = self.route(prefix);
        let (here, there) = (self.here.clone(), self.there.clone());
        self.wal
            .list(Some(&there_prefix))
            .map(move |m| m.map(|mut m| {
                m.location = Self::back(&here, &there, &m.location);
                m
            }))
            .boxed()
    }

    fn cross_store(from: &Path, to: &Path) -> object_store::Error {
        object_store::Error::NotSupported {
            source: format!("{from} and {to} are kept in different stores (WALs have a store of their own)").into(),
        }
    }
}

impl fmt::Display for SplitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SplitStore({}, WALs in {} under {})", self.main, self.wal, self.there)
    }
}

#[async_trait]
impl ObjectStore for SplitStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let (store, path) = self.route(location);
        store.put_opts(&path, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let (store, path) = self.route(location);
        store.put_multipart_opts(&path, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let (store, path) = self.route(location);
        let mut got = store.get_opts(&path, options).await?;
        got.meta.location = location.clone();
        Ok(got)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let (store, path) = self.route(location);
        store.get_ranges(&path, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let (main, wal, here, there) = (self.main.clone(), self.wal.clone(), self.here.clone(), self.there.clone());
        locations
            .then(move |path| {
                let split = SplitStore { main: main.clone(), wal: wal.clone(), here: here.clone(), there: there.clone() };
                async move {
                    let path = path?;
                    let (store, kept) = split.route(&path);
                    let mut out = store.delete_stream(stream::iter([Ok(kept)]).boxed());
                    match out.next().await {
                        Some(Ok(_)) | None => Ok(path),
                        Some(Err(e)) => Err(e),
                    }
                }
            })
            .boxed()
    }

    /// Under the WAL directory: the WAL store's listing. Above it (the
    /// database root, or everything): both, the main store's without
    /// anything it may still hold under the WAL directory's name.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Some(p) = prefix {
            if p.prefix_matches(&self.here) {
                return self.list_wal(p);
            }
            if !self.here.prefix_matches(p) {
                return self.main.list(prefix);
            }
        }
        let here = self.here.clone();
        let main = self.main.list(prefix).filter(move |m| {
            let keep = m.as_ref().map_or(true, |m| !m.location.prefix_matches(&here));
            futures::future::ready(keep)
        });
        main.chain(self.list_wal(&self.here.clone())).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        if let Some(p) = prefix {
            if p.prefix_matches(&self.here) {
                let (_, there_prefix) = self.route(p);
                let mut r = self.wal.list_with_delimiter(Some(&there_prefix)).await?;
                r.common_prefixes = r.common_prefixes.iter().map(|c| Self::back(&self.here, &self.there, c)).collect();
                for m in &mut r.objects {
                    m.location = Self::back(&self.here, &self.there, &m.location);
                }
                return Ok(r);
            }
        }
        let mut r = self.main.list_with_delimiter(prefix).await?;
        // The WAL directory is a child of `prefix`: shown as one.
        let parent_of_wal = self.here.parts().count() == prefix.map_or(0, |p| p.parts().count()) + 1
            && prefix.is_none_or(|p| self.here.prefix_matches(p));
        if parent_of_wal && !r.common_prefixes.contains(&self.here) {
            r.common_prefixes.push(self.here.clone());
            r.common_prefixes.sort();
        }
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let ((a, from_kept), (b, to_kept)) = (self.route(from), self.route(to));
        if !StdArc::ptr_eq(a, b) {
            return Err(Self::cross_store(from, to));
        }
        a.copy_opts(&from_kept, &to_kept, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let ((a, from_kept), (b, to_kept)) = (self.route(from), self.route(to));
        if !StdArc::ptr_eq(a, b) {
            return Err(Self::cross_store(from, to));
        }
        a.rename_opts(&from_kept, &to_kept, options).await
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    fn stores() -> (StdArc<InMemory>, StdArc<InMemory>, SplitStore) {
        let (main, wal) = (StdArc::new(InMemory::new()), StdArc::new(InMemory::new()));
        let split = SplitStore::new(main.clone(), &Path::from("db"), wal.clone(), &Path::from("fast/x"));
        (main, wal, split)
    }

    async fn names(store: &dyn ObjectStore, prefix: Option<&Path>) -> Vec<String> {
        let mut v: Vec<String> = store.list(prefix).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
        v.sort();
        v
    }

    /// WALs go to the WAL store under its root, everything else stays, and
    /// a listing shows the engine's names wherever they are kept.
    #[tokio::test]
    async fn wals_are_kept_in_the_wal_store_under_their_own_names() {
        let (main, wal, split) = stores();
        split.put(&Path::from("db/wal/00000000000000000001.sst"), "w1".into()).await.unwrap();
        split.put(&Path::from("db/manifest/00000000000000000001.manifest"), "m1".into()).await.unwrap();
        split.put(&Path::from("db/compacted/X.sst"), "s1".into()).await.unwrap();
        assert_eq!(names(wal.as_ref(), None).await, ["fast/x/wal/00000000000000000001.sst"]);
        assert_eq!(names(main.as_ref(), None).await, ["db/compacted/X.sst", "db/manifest/00000000000000000001.manifest"]);
        assert_eq!(names(&split, Some(&Path::from("db/wal"))).await, ["db/wal/00000000000000000001.sst"]);
        assert_eq!(
            names(&split, Some(&Path::from("db"))).await,
            ["db/compacted/X.sst", "db/manifest/00000000000000000001.manifest", "db/wal/00000000000000000001.sst"]
        );
        assert_eq!(names(&split, Some(&Path::from("db/compacted"))).await, ["db/compacted/X.sst"]);
        let got = split.get(&Path::from("db/wal/00000000000000000001.sst")).await.unwrap();
        assert_eq!(got.meta.location.as_ref(), "db/wal/00000000000000000001.sst");
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"w1");
        let top = split.list_with_delimiter(Some(&Path::from("db"))).await.unwrap();
        let dirs: Vec<&str> = top.common_prefixes.iter().map(|p| p.as_ref()).collect();
        assert_eq!(dirs, ["db/compacted", "db/manifest", "db/wal"]);
    }

    /// A create-if-absent of a WAL is answered by the WAL store: the one
    /// store that decides who owns a WAL id.
    #[tokio::test]
    async fn a_wal_create_is_decided_by_the_wal_store() {
        let (_, wal, split) = stores();
        let create = PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
        wal.put(&Path::from("fast/x/wal/00000000000000000002.sst"), "theirs".into()).await.unwrap();
        let r = split.put_opts(&Path::from("db/wal/00000000000000000002.sst"), "ours".into(), create).await;
        assert!(matches!(r, Err(object_store::Error::AlreadyExists { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn deletes_reach_the_store_that_keeps_the_object() {
        let (main, wal, split) = stores();
        split.put(&Path::from("db/wal/00000000000000000003.sst"), "w".into()).await.unwrap();
        split.put(&Path::from("db/compacted/Y.sst"), "s".into()).await.unwrap();
        let paths = stream::iter([Ok(Path::from("db/wal/00000000000000000003.sst")), Ok(Path::from("db/compacted/Y.sst"))]).boxed();
        let deleted: Vec<Path> = split.delete_stream(paths).try_collect().await.unwrap();
        assert_eq!(deleted.len(), 2);
        assert!(names(wal.as_ref(), None).await.is_empty() && names(main.as_ref(), None).await.is_empty());
        let r = split.copy(&Path::from("db/wal/a"), &Path::from("db/compacted/a")).await;
        assert!(matches!(r, Err(object_store::Error::NotSupported { .. })), "{r:?}");
    }
}
