//! `--compile-priority`: the threads that compile components run at the chosen scheduling
//! priority, the threads serving connections keep theirs, and deploys still work.

use std::fs;

use crate::support::{Host, TestDir, function_bytes, function_wasm, run_wsfn_host};

/// Linux's number for the SCHED_IDLE policy.
const SCHED_IDLE: u64 = 5;
const SCHED_OTHER: u64 = 0;

/// A thread of the host: its name, scheduling policy and nice value, from /proc.
#[derive(Debug)]
struct Thread {
    name: String,
    policy: u64,
    nice: i64,
}

fn threads_of(pid: u32) -> Vec<Thread> {
    let mut threads = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let (Ok(name), Ok(stat)) = (
            fs::read_to_string(path.join("comm")),
            fs::read_to_string(path.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // The fields after the name (which is in parentheses and may hold spaces), counted
        // from the state, field 3 of proc(5): nice is field 19, policy field 41.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        threads.push(Thread {
            name: name.trim().to_owned(),
            nice: fields[19 - 3].parse().unwrap(),
            policy: fields[41 - 3].parse().unwrap(),
        });
    }
    threads
}

/// Deploys a new version, checks it serves, and returns the host's threads afterwards.
async fn deploy_and_look(host: &Host) -> Vec<Thread> {
    host.admin().deploy("echo", function_bytes("faulty")).await;
    let mut client = host.connect("echo").await;
    assert_eq!(client.ask("after the deploy").await, "after the deploy");
    let threads = threads_of(host.pid());
    assert!(
        threads.iter().any(|t| t.name.starts_with("wsfn-compile-")),
        "the compiler's pool is the host's own: {threads:?}"
    );
    threads
}

fn serving_threads(threads: &[Thread]) -> impl Iterator<Item = &Thread> {
    threads.iter().filter(|t| t.name == "tokio-rt-worker")
}

#[tokio::test(flavor = "multi_thread")]
async fn at_idle_priority_the_compiler_runs_as_sched_idle_and_serving_is_untouched() {
    let host = Host::builder()
        .function("echo")
        .option("--compile-priority", "idle")
        .start_process()
        .await;
    let threads = deploy_and_look(&host).await;
    for thread in threads
        .iter()
        .filter(|t| t.name.starts_with("wsfn-compile"))
    {
        assert_eq!(thread.policy, SCHED_IDLE, "{thread:?}");
    }
    assert!(serving_threads(&threads).count() > 0, "{threads:?}");
    for thread in serving_threads(&threads) {
        assert_eq!((thread.policy, thread.nice), (SCHED_OTHER, 0), "{thread:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_the_compiler_runs_at_nice_10() {
    let host = Host::builder().function("echo").start_process().await;
    let threads = deploy_and_look(&host).await;
    for thread in threads
        .iter()
        .filter(|t| t.name.starts_with("wsfn-compile"))
    {
        assert_eq!(
            (thread.policy, thread.nice),
            (SCHED_OTHER, 10),
            "{thread:?}"
        );
    }
    for thread in serving_threads(&threads) {
        assert_eq!((thread.policy, thread.nice), (SCHED_OTHER, 0), "{thread:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_file_sets_it_and_an_unknown_value_is_named_with_the_choices() {
    let dir = TestDir::new();
    let file = dir.path().join("wsfn.toml");
    let data_dir = dir.data_dir().display().to_string();
    let env = [
        ("WSFN_DATA_DIR", data_dir.as_str()),
        ("WSFN_ADMIN_LISTEN", "127.0.0.1:0"),
    ];
    let write = |priority: &str| {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n[functions.echo]\npath = \"{}\"\n[limits]\ncompile-priority = \"{priority}\"\n",
            function_wasm("echo").display()
        );
        fs::write(&file, text).unwrap();
    };

    write("idle");
    let host = Host::builder().config(&file).start_process().await;
    let threads = deploy_and_look(&host).await;
    for thread in threads
        .iter()
        .filter(|t| t.name.starts_with("wsfn-compile"))
    {
        assert_eq!(thread.policy, SCHED_IDLE, "{thread:?}");
    }
    drop(host);

    write("lowest");
    let file_arg = file.display().to_string();
    let output = run_wsfn_host(dir.path(), &["run", "--config", &file_arg], &env).await;
    let message = output.expect_failure();
    assert!(message.contains("line 5"), "names the line: {output:?}");
    assert!(
        output
            .stderr
            .contains("unknown value `lowest`: use one of `normal`, `low`, `idle`"),
        "names the choices: {output:?}"
    );
}
