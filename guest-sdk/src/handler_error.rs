//! What handlers return: plain values, or `Result`s so that `?` works in them.
//!
//! The choice is the parameter of [`Function`](crate::Function): `impl Function for T` means
//! `Function<NoError>`, whose handlers return `()` and [`Decision`]; `impl Function<E> for T`,
//! for any error type `E` that implements `Display`, makes them return `Result<(), E>` and
//! `Result<Decision, E>`. [`HandlerError`] maps one to the other and decides what an `Err`
//! becomes.
//!
//! It is a parameter of the trait because stable Rust offers no lint-free way to let each
//! impl pick a handler's return type: with `-> impl Trait` in the trait, every impl that
//! names its concrete type, `()` included, gets a `refining_impl_trait` warning, and
//! associated-type defaults are unstable.

use core::fmt::Display;

use crate::Decision;

/// The handler error of plain [`Function`](crate::Function) impls: handlers that cannot fail
/// return `()` and [`Decision`] directly. It has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoError {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoError {}
    impl<E: core::fmt::Display> Sealed for E {}
}

/// An error type for the handlers of [`Function<E>`](crate::Function): [`NoError`], or any type
/// that implements `Display` (`Box<dyn std::error::Error>`, `String`, `anyhow::Error`, an
/// error enum of your own ...).
///
/// A handler's `Err` is written to stderr on one line naming the handler, for example
/// `on-message failed: expected value at line 1 column 1`, which the host logs with the
/// function and the connection. It is formatted with `{:#}`, so error types that print their
/// causes in the alternate form (anyhow's) show them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the error type of `Function` handlers",
    label = "handler errors are logged, so they must implement `Display`"
)]
pub trait HandlerError: sealed::Sealed {
    /// What a handler producing `T` returns: `T` itself for [`NoError`], `Result<T, E>` for an
    /// error type `E`.
    type Return<T>;

    /// A successful return of `value`, for the default handlers.
    #[doc(hidden)]
    fn success<T>(value: T) -> Self::Return<T>;

    /// Logs an `Err` returned by `handler`.
    #[doc(hidden)]
    fn finish(handler: &str, returned: Self::Return<()>);

    /// The decision on-connect came to: an `Err` is logged and refuses the connection.
    #[doc(hidden)]
    fn decision(returned: Self::Return<Decision>) -> Decision;
}

impl HandlerError for NoError {
    type Return<T> = T;

    fn success<T>(value: T) -> T {
        value
    }

    fn finish(_handler: &str, _returned: ()) {}

    fn decision(returned: Decision) -> Decision {
        returned
    }
}

impl<E: Display> HandlerError for E {
    type Return<T> = Result<T, E>;

    fn success<T>(value: T) -> Result<T, E> {
        Ok(value)
    }

    fn finish(handler: &str, returned: Result<(), E>) {
        if let Err(error) = returned {
            log_failure(handler, &error);
        }
    }

    fn decision(returned: Result<Decision, E>) -> Decision {
        returned.unwrap_or_else(|error| {
            log_failure("on-connect", &error);
            // The same answer the host gives when on-connect traps; the error itself goes to
            // the log only, since it may say more than a client should learn.
            Decision::reject(500, REJECT_REASON)
        })
    }
}

/// The body of the 500 a client gets when on-connect returns an `Err`.
pub(crate) const REJECT_REASON: &str = "the function failed to accept the connection";

/// Writes `<handler> failed: <error>` to stderr.
fn log_failure(handler: &str, error: &dyn Display) {
    eprintln!("{}", failure_line(handler, error));
}

/// The log line for a failed handler: one line, since the host logs each line on its own and
/// the handler's name should head everything the error says.
fn failure_line(handler: &str, error: &dyn Display) -> String {
    let text = format!("{error:#}");
    let text: Vec<&str> = text.lines().map(str::trim_end).collect();
    format!("{handler} failed: {}", text.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_error_passes_values_through() {
        NoError::finish("on-message", ());
        let decision = NoError::decision(Decision::accept().join("a"));
        assert_eq!(decision, Decision::accept().join("a"));
    }

    #[test]
    fn an_err_from_on_connect_rejects_with_500() {
        let refused = <Box<dyn std::error::Error>>::decision(Err("no database".into()));
        assert_eq!(refused, Decision::reject(500, REJECT_REASON));
        let accepted = <String>::decision(Ok(Decision::accept()));
        assert!(accepted.is_accept());
    }

    #[test]
    fn the_log_line_names_the_handler_and_stays_on_one_line() {
        let error = "bad input\nat line 2\r\n";
        assert_eq!(
            failure_line("on-message", &error),
            "on-message failed: bad input at line 2"
        );
        let parse = "x"
            .parse::<u32>()
            .map_err(Box::<dyn std::error::Error>::from);
        let Err(parse) = parse else {
            panic!("`x` is not a number")
        };
        assert_eq!(
            failure_line("on-close", &parse),
            "on-close failed: invalid digit found in string"
        );
    }

    /// An error whose alternate form adds its cause, as anyhow's does.
    struct WithCause;

    impl Display for WithCause {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            if f.alternate() {
                f.write_str("saving: disk full")
            } else {
                f.write_str("saving")
            }
        }
    }

    #[test]
    fn the_alternate_form_is_logged() {
        assert_eq!(
            failure_line("on-error", &WithCause),
            "on-error failed: saving: disk full"
        );
    }
}
