//! Work that must not compete with serving connections: compiling components.
//!
//! Compiling takes milliseconds to seconds of CPU (cranelift, on a pool of threads) while the
//! same CPUs keep serving connections. The compiling threads therefore run at a lower priority
//! (nice 10): a deploy takes longer on a busy host, but the latency of the messages being
//! served does not jump while it compiles. The compiler's worker pool is created by the first
//! compilation and inherits the priority of the thread that created it, so every compilation
//! goes through here.

use super::LoadError;

/// The nice value of compiling threads (0 is the default, 19 the lowest priority).
const COMPILE_NICE: i32 = 10;

/// Runs `work` on a fresh low-priority thread and waits for its result.
pub async fn at_low_priority<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LoadError> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("wsfn-compile".into())
        .spawn(move || {
            lower_priority();
            let _ = done.send(work());
        })
        .map_err(|e| LoadError::Invalid(format!("cannot start a compiling thread: {e}")))?;
    result
        .await
        .map_err(|_| LoadError::Invalid("compilation did not finish".into()))
}

fn lower_priority() {
    // On Linux the nice value belongs to each thread, and `who == 0` names the calling one.
    // SAFETY: setpriority only reads its arguments; failing leaves the priority as it was,
    // which is harmless.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, COMPILE_NICE) };
}
