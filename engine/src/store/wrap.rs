//! Pass-through methods for `ObjectStore` wrappers.
//!
//! Every wrapper (retries, hedges, request counts, and the test stores that
//! delay or fail requests) changes a few methods and forwards the rest to the
//! store it wraps. [`delegate_object_store!`](crate::delegate_object_store)
//! writes the forwarding methods, so a wrapper keeps only what it changes.
//!
//! A wrapper that does the same before every request (a delay, a count, an
//! injected fault) says it once, in a `before` block.
//!
//! A method that is neither written nor named keeps `ObjectStore`'s default,
//! which goes through the wrapper's own methods (`get_ranges` through
//! `get_opts`, `list_with_offset` through `list`): name such a method only if
//! the wrapper should bypass itself for it.

use std::ops::Range;

use object_store::path::Path;
use object_store::{GetOptions, PutOptions};

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
///     fn list(&self, prefix: Option<&Path>) -> futures::stream::BoxStream<'static, Result<object_store::ObjectMeta>> {
///         println!("list {prefix:?}");
///         self.inner.list(prefix)
///     }
///     // Each request below is logged, then forwarded.
///     tidemark::delegate_object_store!(inner, before |_this, request| { println!("{request:?}"); } =>
///         put_opts, put_multipart_opts, get_opts, list_with_delimiter, copy_opts, rename_opts);
///     // Forwarded as they are.
///     tidemark::delegate_object_store!(inner => delete_stream);
/// }
/// ```
///
/// With `before |this, request| { ... }` the block runs first, with `this`
/// the wrapper and `request` a [`Request`] (it may `.await` and return an
/// error with `?`); only the async methods take it, as `list` and
/// `delete_stream` return a stream at once.
///
/// The methods are written in the form `#[async_trait]` gives the trait's
/// (a boxed future), since the attribute does not see into macro calls.
#[doc(hidden)]
#[macro_export]
macro_rules! delegate_object_store {
    ($inner:tt => $($method:ident),+ $(,)?) => {
        $( $crate::delegate_object_store!(@method $inner [] $method); )+
    };
    ($inner:tt, before |$this:ident, $request:ident| $hook:block => $($method:ident),+ $(,)?) => {
        $( $crate::delegate_object_store!(@method $inner [$this $request $hook] $method); )+
    };
    // One async method: its lifetimes, arguments and answer, the `Request`
    // it is and the forwarded call (`$s` is the `self` both are written with).
    (@async $s:tt [$($this:ident $request:ident $hook:block)?] $name:ident [$($lt:lifetime),*]
        ($($arg:ident: $ty:ty),*) -> $ret:ty, $req:expr, $call:expr) => {
        fn $name<'s, $($lt,)* 'async_trait>(&'s $s, $($arg: $ty),*) -> $crate::__private::__Fut<'async_trait, $ret>
        where
            's: 'async_trait,
            $($lt: 'async_trait,)*
            Self: 'async_trait,
        {
            Box::pin(async move {
                $(
                    let $this = $s;
                    let $request = $req;
                    $hook
                )?
                $call.await
            })
        }
    };
    (@method $inner:tt $hook:tt put_opts) => {
        $crate::delegate_object_store!(@async self $hook put_opts ['l]
            (location: &'l $crate::__private::__object_store::path::Path, payload: $crate::__private::__object_store::PutPayload, opts: $crate::__private::__object_store::PutOptions) -> $crate::__private::__object_store::PutResult,
            $crate::__private::Request::Put { location, opts: &opts },
            self.$inner.put_opts(location, payload, opts));
    };
    (@method $inner:tt $hook:tt put_multipart_opts) => {
        $crate::delegate_object_store!(@async self $hook put_multipart_opts ['l]
            (location: &'l $crate::__private::__object_store::path::Path, opts: $crate::__private::__object_store::PutMultipartOptions) -> Box<dyn $crate::__private::__object_store::MultipartUpload>,
            $crate::__private::Request::PutMultipart { location },
            self.$inner.put_multipart_opts(location, opts));
    };
    (@method $inner:tt $hook:tt get_opts) => {
        $crate::delegate_object_store!(@async self $hook get_opts ['l]
            (location: &'l $crate::__private::__object_store::path::Path, options: $crate::__private::__object_store::GetOptions) -> $crate::__private::__object_store::GetResult,
            $crate::__private::Request::Get { location, options: &options },
            self.$inner.get_opts(location, options));
    };
    (@method $inner:tt $hook:tt get_ranges) => {
        $crate::delegate_object_store!(@async self $hook get_ranges ['l, 'r]
            (location: &'l $crate::__private::__object_store::path::Path, ranges: &'r [::std::ops::Range<u64>]) -> Vec<$crate::__private::__Bytes>,
            $crate::__private::Request::GetRanges { location, ranges },
            self.$inner.get_ranges(location, ranges));
    };
    (@method $inner:tt $hook:tt list_with_delimiter) => {
        $crate::delegate_object_store!(@async self $hook list_with_delimiter ['p]
            (prefix: Option<&'p $crate::__private::__object_store::path::Path>) -> $crate::__private::__object_store::ListResult,
            $crate::__private::Request::ListWithDelimiter { prefix },
            self.$inner.list_with_delimiter(prefix));
    };
    (@method $inner:tt $hook:tt copy_opts) => {
        $crate::delegate_object_store!(@async self $hook copy_opts ['f, 't]
            (from: &'f $crate::__private::__object_store::path::Path, to: &'t $crate::__private::__object_store::path::Path, options: $crate::__private::__object_store::CopyOptions) -> (),
            $crate::__private::Request::Copy { from, to },
            self.$inner.copy_opts(from, to, options));
    };
    (@method $inner:tt $hook:tt rename_opts) => {
        $crate::delegate_object_store!(@async self $hook rename_opts ['f, 't]
            (from: &'f $crate::__private::__object_store::path::Path, to: &'t $crate::__private::__object_store::path::Path, options: $crate::__private::__object_store::RenameOptions) -> (),
            $crate::__private::Request::Rename { from, to },
            self.$inner.rename_opts(from, to, options));
    };
    // The stream methods answer at once: no `before` block.
    (@method $inner:tt [] delete_stream) => {
        fn delete_stream(
            &self,
            locations: $crate::__private::__BoxStream<$crate::__private::__object_store::path::Path>,
        ) -> $crate::__private::__BoxStream<$crate::__private::__object_store::path::Path> {
            self.$inner.delete_stream(locations)
        }
    };
    (@method $inner:tt [] list) => {
        fn list(&self, prefix: Option<&$crate::__private::__object_store::path::Path>) -> $crate::__private::__BoxStream<$crate::__private::__object_store::ObjectMeta> {
            self.$inner.list(prefix)
        }
    };
    (@method $inner:tt [] list_with_offset) => {
        fn list_with_offset(
            &self,
            prefix: Option<&$crate::__private::__object_store::path::Path>,
            offset: &$crate::__private::__object_store::path::Path,
        ) -> $crate::__private::__BoxStream<$crate::__private::__object_store::ObjectMeta> {
            self.$inner.list_with_offset(prefix, offset)
        }
    };
}

/// The request a `before` block of
/// [`delegate_object_store!`](crate::delegate_object_store) runs ahead of.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    /// `put_opts`.
    Put {
        /// The object written.
        location: &'a Path,
        /// Its mode (overwrite, create-if-absent, update).
        opts: &'a PutOptions,
    },
    /// `put_multipart_opts`.
    PutMultipart {
        /// The object written.
        location: &'a Path,
    },
    /// `get_opts` (whole or ranged).
    Get {
        /// The object read.
        location: &'a Path,
        /// Its range and conditions.
        options: &'a GetOptions,
    },
    /// `get_ranges`.
    GetRanges {
        /// The object read.
        location: &'a Path,
        /// The byte ranges read.
        ranges: &'a [Range<u64>],
    },
    /// `list_with_delimiter`.
    ListWithDelimiter {
        /// The prefix listed (`None`: all).
        prefix: Option<&'a Path>,
    },
    /// `copy_opts`.
    Copy {
        /// The source.
        from: &'a Path,
        /// The destination.
        to: &'a Path,
    },
    /// `rename_opts`.
    Rename {
        /// The source.
        from: &'a Path,
        /// The destination.
        to: &'a Path,
    },
}

impl Request<'_> {
    /// The object the request reads or writes: the destination of a copy or
    /// rename, the prefix of a listing ("" for all).
    pub fn path(&self) -> &str {
        match self {
            Request::Put { location, .. }
            | Request::PutMultipart { location }
            | Request::Get { location, .. }
            | Request::GetRanges { location, .. } => location.as_ref(),
            Request::ListWithDelimiter { prefix } => prefix.map_or("", |p| p.as_ref()),
            Request::Copy { to, .. } | Request::Rename { to, .. } => to.as_ref(),
        }
    }

    /// Whether the request only reads (a get or a listing).
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Get { .. } | Request::GetRanges { .. } | Request::ListWithDelimiter { .. })
    }
}

/// The stream `ObjectStore`'s listing and delete methods return.
#[doc(hidden)]
pub type __BoxStream<T> = futures::stream::BoxStream<'static, object_store::Result<T>>;

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::sync::{Mutex, StdArc as Arc};

    use async_trait::async_trait;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    use super::Request;

    /// Records each async request (path, read or not) before forwarding it
    /// and refuses paths under `deny/`; `list` and `delete_stream` are
    /// forwarded as they are. A forward to the wrong method or store, or a
    /// request the hook does not see, fails the test below.
    #[derive(Debug)]
    struct Recorded {
        inner: Arc<dyn ObjectStore>,
        seen: Mutex<Vec<(String, bool)>>,
    }

    impl std::fmt::Display for Recorded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Recorded({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for Recorded {
        crate::delegate_object_store!(inner, before |this, request| {
            this.seen.lock().unwrap().push((request.path().to_string(), request.is_read()));
            if request.path().starts_with("deny/") {
                return Err(object_store::Error::PermissionDenied { path: request.path().into(), source: "denied".into() });
            }
        } => put_opts, put_multipart_opts, get_opts, get_ranges, list_with_delimiter, copy_opts, rename_opts);
        crate::delegate_object_store!(inner => delete_stream, list, list_with_offset);
    }

    #[tokio::test]
    async fn forwarded_methods_reach_the_inner_store_after_the_hook() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = Recorded { inner: inner.clone(), seen: Mutex::new(Vec::new()) };
        let (a, b, c) = (Path::from("d/a"), Path::from("d/b"), Path::from("d/c"));
        store.put(&a, PutPayload::from_static(b"hello")).await.unwrap();
        assert_eq!(&inner.get(&a).await.unwrap().bytes().await.unwrap()[..], b"hello");
        assert_eq!(&store.get(&a).await.unwrap().bytes().await.unwrap()[..], b"hello");
        let ranges = store.get_ranges(&a, &[1..3, 0..1]).await.unwrap();
        assert_eq!((&ranges[0][..], &ranges[1][..]), (&b"el"[..], &b"h"[..]));
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
        let denied = Path::from("deny/x");
        assert!(matches!(store.put(&denied, PutPayload::from_static(b"no")).await, Err(object_store::Error::PermissionDenied { .. })));
        assert!(inner.head(&denied).await.is_err(), "a hook's error stops the request");
        let seen = store.seen.lock().unwrap().clone();
        let want: Vec<(String, bool)> = [
            ("d/a", false),
            ("d/a", true),
            ("d/a", true),
            ("d/b", false),
            ("d/c", false),
            ("", true),
            ("d/b", false),
            ("deny/x", false),
        ]
        .into_iter()
        .map(|(p, r)| (p.to_string(), r))
        .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_request_names_the_object_it_writes() {
        let (from, to) = (Path::from("a"), Path::from("b"));
        assert_eq!(Request::Copy { from: &from, to: &to }.path(), "b");
        assert_eq!(Request::ListWithDelimiter { prefix: None }.path(), "");
        assert!(!Request::Rename { from: &from, to: &to }.is_read());
    }
}
