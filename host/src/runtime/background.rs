//! Work that must not compete with serving connections: compiling components.
//!
//! Compiling takes milliseconds to seconds of CPU (cranelift, on a pool of threads) while the
//! same CPUs keep serving connections. The compiling threads therefore run at the priority
//! chosen with `--compile-priority`. Measured on one CPU kept busy by an echo load: at nice 10
//! the compiler still takes the CPU for whole scheduler ticks (about 4 ms each), which every
//! message in flight sees as latency; at SCHED_IDLE it runs only when serving leaves the CPU
//! idle, so serving latency does not move (BENCHMARKS.md, "Hot swap").
//!
//! The compiler's worker pool is built here, so its threads start at the chosen priority and
//! are known by thread id: a compile that waited [`IDLE_COMPILE_LIMIT`] for idle CPU raises
//! them to nice 10 until it is done. Leaving SCHED_IDLE needs CAP_SYS_NICE (or an RLIMIT_NICE
//! that allows nice 10); without it the compile goes on at idle priority, on the small share
//! of a busy CPU the scheduler still gives it.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::LoadError;
use crate::config::{CompilePriority, IDLE_COMPILE_LIMIT};

/// The nice value of `CompilePriority::Low` (0 is the default, 19 the lowest priority).
const LOW_NICE: i32 = 10;

/// The process's compile priority: the first engine built sets it, like the worker pool,
/// which is one per process.
static PRIORITY: OnceLock<CompilePriority> = OnceLock::new();
/// Thread ids of the compiler's worker pool.
static POOL_THREADS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());
/// Idle-priority compiles that waited too long and raised the pool; it goes back to idle
/// when the last of them ends.
static RAISED: AtomicUsize = AtomicUsize::new(0);

/// Sets the priority of compiling threads and starts the compiler's worker pool with it.
/// Only the first call in a process has an effect.
pub fn init_compile_threads(priority: CompilePriority) {
    if PRIORITY.set(priority).is_err() {
        return;
    }
    // An error means the pool exists already (built before any engine): it then runs at the
    // priority of the thread that built it.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("wsfn-compile-{i}"))
        .start_handler(move |_| {
            let thread = current_thread();
            if let Ok(mut threads) = POOL_THREADS.lock() {
                threads.push(thread);
            }
            // Failing leaves the thread at normal priority: serving then shares the CPU more,
            // but nothing breaks.
            let _ = set_priority(thread, priority);
        })
        .build_global();
}

fn priority() -> CompilePriority {
    PRIORITY.get().copied().unwrap_or_default()
}

/// Runs `work` on a fresh thread at the compile priority (`--compile-priority`) and waits
/// for its result.
pub async fn at_compile_priority<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LoadError> {
    let priority = priority();
    let (done, mut result) = tokio::sync::oneshot::channel();
    let worker = Arc::new(AtomicI32::new(0));
    let worker_id = worker.clone();
    std::thread::Builder::new()
        .name("wsfn-compile".into())
        .spawn(move || {
            let thread = current_thread();
            worker_id.store(thread, Ordering::Release);
            let _ = set_priority(thread, priority);
            let _ = done.send(work());
        })
        .map_err(|e| LoadError::Compiler(format!("cannot start a compiling thread: {e}")))?;
    let finished =
        |r: Result<T, _>| r.map_err(|_| LoadError::Compiler("the compile did not finish".into()));
    if priority != CompilePriority::Idle {
        return finished(result.await);
    }
    match tokio::time::timeout(IDLE_COMPILE_LIMIT, &mut result).await {
        Ok(r) => finished(r),
        Err(_) => {
            tracing::info!(
                waited_s = IDLE_COMPILE_LIMIT.as_secs(),
                "a compile at idle priority found no idle CPU: raising it to nice {LOW_NICE}"
            );
            let _raised = Raised::new(worker.load(Ordering::Acquire));
            finished(result.await)
        }
    }
}

/// The pool (and one compiling thread) at `low` priority while alive.
struct Raised;

impl Raised {
    fn new(worker: libc::pid_t) -> Self {
        RAISED.fetch_add(1, Ordering::AcqRel);
        let mut threads = pool_threads();
        threads.push(worker);
        let mut refused = None;
        for thread in threads.into_iter().filter(|&thread| thread != 0) {
            if let Err(error) = set_priority(thread, CompilePriority::Low) {
                refused = Some(error);
            }
        }
        if let Some(error) = refused {
            tracing::warn!(
                "cannot raise the compiling threads out of idle priority ({error}); \
                 the compile continues on the CPU time serving leaves"
            );
        }
        Raised
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if RAISED.fetch_sub(1, Ordering::AcqRel) == 1 {
            for thread in pool_threads() {
                let _ = set_priority(thread, CompilePriority::Idle);
            }
        }
    }
}

fn pool_threads() -> Vec<libc::pid_t> {
    POOL_THREADS.lock().map(|t| t.clone()).unwrap_or_default()
}

fn current_thread() -> libc::pid_t {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Sets one thread's scheduling policy (and, outside SCHED_IDLE, where it means nothing,
/// its nice value). A refusal leaves the thread as it was.
fn set_priority(thread: libc::pid_t, priority: CompilePriority) -> std::io::Result<()> {
    let (policy, nice) = match priority {
        CompilePriority::Normal => (libc::SCHED_OTHER, Some(0)),
        CompilePriority::Low => (libc::SCHED_OTHER, Some(LOW_NICE)),
        CompilePriority::Idle => (libc::SCHED_IDLE, None),
    };
    let param = libc::sched_param { sched_priority: 0 };
    // The nice value goes first: leaving SCHED_IDLE is only allowed at a nice value the
    // thread may have, and nice 10 needs no privilege where nice 0 might.
    // SAFETY: both calls only read their arguments; on Linux a thread id names one thread
    // for setpriority with PRIO_PROCESS and for sched_setscheduler.
    let failed = unsafe {
        nice.is_some_and(|nice| {
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, nice) != 0
        }) || libc::sched_setscheduler(thread, policy, &param) != 0
    };
    if failed {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
