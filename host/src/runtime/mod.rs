//! The function runtime: the wasmtime engine, compiled functions, warm instance pools, limits.

mod background;
pub mod bindings;
mod engine;
mod function;
mod guest_log;
mod import_error;
mod instance_state;
mod limiter;

pub use background::at_compile_priority;
pub use engine::{EpochTicker, build_engine};
pub use function::{
    ConnectRequest, Decision, EventError, Function, LoadError, build_linker, compile, load_compiled,
};
pub use import_error::{ConnectionFailure, ImportError, KvError};
pub use instance_state::{FunctionEnv, InstanceState};
