//! One test body, run against the same sample written in every language.

/// Generates, for each language, a module of `#[tokio::test]`s that call the test bodies
/// `async fn NAME(function: &str)` of the invoking module with the file stem of that language's
/// build of `sample`: `rust` with `target/functions/<sample>.wasm`, `python` with
/// `<sample>-py.wasm` and `javascript` with `<sample>-js.wasm` (built by
/// `scripts/build-functions.sh --other-languages`). Test names read `echo::python::NAME`.
macro_rules! in_every_language {
    ($sample:literal: $($test:ident),+ $(,)?) => {
        $crate::support::in_every_language!(@language rust, $sample; $($test),+);
        $crate::support::in_every_language!(@language python, concat!($sample, "-py"); $($test),+);
        $crate::support::in_every_language!(@language javascript, concat!($sample, "-js"); $($test),+);
    };
    (@language $language:ident, $file_stem:expr; $($test:ident),+) => {
        mod $language {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    super::$test($file_stem).await
                }
            )+
        }
    };
}

pub(crate) use in_every_language;
