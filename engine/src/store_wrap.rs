//! Pass-through methods for `ObjectStore` wrappers.
//!
//! Every wrapper (retries, hedges, request counts, and the test stores that
//! delay or fail requests) changes a few methods and forwards the rest to the
//! store it wraps. [`delegate_object_store!`](crate::delegate_object_store)
//! writes the forwarding methods, so a wrapper keeps only what it changes.
//!
//! A method that is neither written nor named keeps `ObjectStore`'s default,
//! which goes through the wrapper's own methods (`get_ranges` through
//! `get_opts`, `list_with_offset` through `list`): name such a method only if
//! the wrapper should bypass itself for it.

#[doc(hidden)]
pub use object_store as __object_store;
#[doc(hidden)]
pub use bytes::Bytes as __Bytes;

/// The future an `#[async_trait]` method of `ObjectStore` returns.
#[doc(hidden)]
pub type __Fut<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = object_store::Result<T>> + Send + 'a>>;

/// Forwards the named `ObjectStore` methods to the store in field `$inner`
/// (an `Arc<dyn ObjectStore>` or any `ObjectStore`).
///
/// Use it inside the wrapper's `#[async_trait] impl ObjectStore` block, after
/// the methods the wrapper changes:
///
/// ```
/// # use std::sync::Arc;
/// # use object_store::{ObjectStore, PutOptions, PutPayload, PutResult, Result, path::Path};
/// #[derive(Debug)]
/// struct Logged { inner: Arc<dyn ObjectStore> }
/// # impl std::fmt::Display for Logged {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "Logged({})", self.inner) }
/// # }
///
/// #[async_trait::async_trait]
/// impl ObjectStore for Logged {
///     async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
///         println!("put {location}");
///         self.inner.put_opts(location, payload, opts).await
///     }
///     tidemark::delegate_object_store!(inner =>
///         put_multipart_opts, get_opts, delete_stream, list, list_with_delimiter, copy_opts, rename_opts);
/// }
/// ```
///
/// The methods are written in the form `#[async_trait]` gives the trait's
/// (a boxed future), since the attribute does not see into macro calls.
#[macro_export]
macro_rules! delegate_object_store {
    ($inner:tt => $($method:ident),+ $(,)?) => {
        $( $crate::delegate_object_store!(@method $inner $method); )+
    };
    (@method $inner:tt put_opts) => {
        fn put_opts<'s, 'l, 'async_trait>(
            &'s self,
            location: &'l $crate::store_wrap::__object_store::path::Path,
            payload: $crate::store_wrap::__object_store::PutPayload,
            opts: $crate::store_wrap::__object_store::PutOptions,
        ) -> $crate::store_wrap::__Fut<'async_trait, $crate::store_wrap::__object_store::PutResult>
        where
            's: 'async_trait,
            'l: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.put_opts(location, payload, opts)
        }
    };
    (@method $inner:tt put_multipart_opts) => {
        fn put_multipart_opts<'s, 'l, 'async_trait>(
            &'s self,
            location: &'l $crate::store_wrap::__object_store::path::Path,
            opts: $crate::store_wrap::__object_store::PutMultipartOptions,
        ) -> $crate::store_wrap::__Fut<'async_trait, Box<dyn $crate::store_wrap::__object_store::MultipartUpload>>
        where
            's: 'async_trait,
            'l: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.put_multipart_opts(location, opts)
        }
    };
    (@method $inner:tt get_opts) => {
        fn get_opts<'s, 'l, 'async_trait>(
            &'s self,
            location: &'l $crate::store_wrap::__object_store::path::Path,
            options: $crate::store_wrap::__object_store::GetOptions,
        ) -> $crate::store_wrap::__Fut<'async_trait, $crate::store_wrap::__object_store::GetResult>
        where
            's: 'async_trait,
            'l: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.get_opts(location, options)
        }
    };
    (@method $inner:tt get_ranges) => {
        fn get_ranges<'s, 'l, 'r, 'async_trait>(
            &'s self,
            location: &'l $crate::store_wrap::__object_store::path::Path,
            ranges: &'r [::std::ops::Range<u64>],
        ) -> $crate::store_wrap::__Fut<'async_trait, Vec<$crate::store_wrap::__Bytes>>
        where
            's: 'async_trait,
            'l: 'async_trait,
            'r: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.get_ranges(location, ranges)
        }
    };
    (@method $inner:tt delete_stream) => {
        fn delete_stream(
            &self,
            locations: $crate::store_wrap::__BoxStream<$crate::store_wrap::__object_store::path::Path>,
        ) -> $crate::store_wrap::__BoxStream<$crate::store_wrap::__object_store::path::Path> {
            self.$inner.delete_stream(locations)
        }
    };
    (@method $inner:tt list) => {
        fn list(
            &self,
            prefix: Option<&$crate::store_wrap::__object_store::path::Path>,
        ) -> $crate::store_wrap::__BoxStream<$crate::store_wrap::__object_store::ObjectMeta> {
            self.$inner.list(prefix)
        }
    };
    (@method $inner:tt list_with_offset) => {
        fn list_with_offset(
            &self,
            prefix: Option<&$crate::store_wrap::__object_store::path::Path>,
            offset: &$crate::store_wrap::__object_store::path::Path,
        ) -> $crate::store_wrap::__BoxStream<$crate::store_wrap::__object_store::ObjectMeta> {
            self.$inner.list_with_offset(prefix, offset)
        }
    };
    (@method $inner:tt list_with_delimiter) => {
        fn list_with_delimiter<'s, 'p, 'async_trait>(
            &'s self,
            prefix: Option<&'p $crate::store_wrap::__object_store::path::Path>,
        ) -> $crate::store_wrap::__Fut<'async_trait, $crate::store_wrap::__object_store::ListResult>
        where
            's: 'async_trait,
            'p: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.list_with_delimiter(prefix)
        }
    };
    (@method $inner:tt copy_opts) => {
        fn copy_opts<'s, 'f, 't, 'async_trait>(
            &'s self,
            from: &'f $crate::store_wrap::__object_store::path::Path,
            to: &'t $crate::store_wrap::__object_store::path::Path,
            options: $crate::store_wrap::__object_store::CopyOptions,
        ) -> $crate::store_wrap::__Fut<'async_trait, ()>
        where
            's: 'async_trait,
            'f: 'async_trait,
            't: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.copy_opts(from, to, options)
        }
    };
    (@method $inner:tt rename_opts) => {
        fn rename_opts<'s, 'f, 't, 'async_trait>(
            &'s self,
            from: &'f $crate::store_wrap::__object_store::path::Path,
            to: &'t $crate::store_wrap::__object_store::path::Path,
            options: $crate::store_wrap::__object_store::RenameOptions,
        ) -> $crate::store_wrap::__Fut<'async_trait, ()>
        where
            's: 'async_trait,
            'f: 'async_trait,
            't: 'async_trait,
            Self: 'async_trait,
        {
            self.$inner.rename_opts(from, to, options)
        }
    };
}

/// The stream `ObjectStore`'s listing and delete methods return.
#[doc(hidden)]
pub type __BoxStream<T> = futures::stream::BoxStream<'static, object_store::Result<T>>;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use async_trait::async_trait;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutOptions, PutPayload, PutResult, Result};

    /// Counts puts and forwards everything else: each forwarded method must
    /// reach the inner store (a forward to the wrong method or store fails).
    #[derive(Debug)]
    struct CountPuts {
        inner: Arc<dyn ObjectStore>,
        puts: AtomicUsize,
    }

    impl std::fmt::Display for CountPuts {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "CountPuts({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for CountPuts {
        async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_opts(location, payload, opts).await
        }
        crate::delegate_object_store!(inner =>
            put_multipart_opts, get_opts, get_ranges, delete_stream, list, list_with_offset,
            list_with_delimiter, copy_opts, rename_opts);
    }

    #[tokio::test]
    async fn forwarded_methods_reach_the_inner_store() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = CountPuts { inner: inner.clone(), puts: AtomicUsize::new(0) };
        let (a, b, c) = (Path::from("d/a"), Path::from("d/b"), Path::from("d/c"));
        store.put(&a, PutPayload::from_static(b"hello")).await.unwrap();
        assert_eq!(store.puts.load(Ordering::SeqCst), 1);
        assert_eq!(&inner.get(&a).await.unwrap().bytes().await.unwrap()[..], b"hello");
        assert_eq!(&store.get(&a).await.unwrap().bytes().await.unwrap()[..], b"hello");
        assert_eq!(&store.get_ranges(&a, &[1..3]).await.unwrap()[0][..], b"el");
        store.copy(&a, &b).await.unwrap();
        store.rename(&b, &c).await.unwrap();
        let names = |v: Vec<object_store::ObjectMeta>| v.into_iter().map(|m| m.location.to_string()).collect::<Vec<_>>();
        assert_eq!(names(store.list(Some(&"d".into())).try_collect().await.unwrap()), ["d/a", "d/c"]);
        assert_eq!(names(store.list_with_offset(None, &a).try_collect().await.unwrap()), ["d/c"]);
        assert_eq!(store.list_with_delimiter(None).await.unwrap().common_prefixes, [Path::from("d")]);
        store.delete(&a).await.unwrap();
        assert!(inner.head(&a).await.is_err());
        let mut upload = store.put_multipart(&b).await.unwrap();
        upload.put_part(PutPayload::from_static(b"part")).await.unwrap();
        upload.complete().await.unwrap();
        assert_eq!(&inner.get(&b).await.unwrap().bytes().await.unwrap()[..], b"part");
        assert_eq!(store.puts.load(Ordering::SeqCst), 1, "copy, rename and multipart are forwarded, not puts");
    }
}
