//! Job env values are secrets: no message, listing, log or status ever
//! shows one; `env_file` keeps them out of the queue altogether; a stored
//! env that cannot be decoded stops the attempt instead of running the job
//! with an empty environment.

use crate::support::TestEnv;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

const SECRET: &str = "s3cr3t";

fn assert_no_secret(what: &str, out: &Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(SECRET),
            "{what}: {stream} shows the secret: {text}"
        );
    }
}

#[test]
fn malformed_env_never_echoes_a_value() {
    let env = TestEnv::new();
    let long = format!("{SECRET}{}", "x".repeat(100_000));
    let shapes = [
        format!(r#""API_TOKEN={SECRET}""#),
        format!(r#"["API_TOKEN={SECRET}"]"#),
        format!(r#"{{"API_TOKEN":["{SECRET}"]}}"#),
        format!(r#"{{"API_TOKEN":{{"nested":"{SECRET}"}}}}"#),
        r#"{"API_TOKEN":31337}"#.replace("31337", "5"),
        r#"{"API_TOKEN":true}"#.to_owned(),
        format!(r#"{{"API_TOKEN":"{SECRET}\u0000"}}"#),
        format!(r#"{{"API_TOKEN={SECRET}":"x"}}"#),
        format!(r#"{{"QUEUECTL_ATTEMPT_TOKEN":"{SECRET}"}}"#),
        format!(r#""{long}""#),
        format!(r#"{{"A":"{long}","B":5}}"#),
    ];
    for shape in &shapes {
        let job = format!(r#"{{"command":"true","env":{shape}}}"#);
        let what = &job[..job.len().min(80)];
        let single = env.run(&["enqueue", &job]);
        assert_eq!(single.status.code(), Some(2), "{what}");
        assert_no_secret(what, &single);
        let lines = format!("{{\"command\":\"true\"}}\n{job}\n");
        let batch = env.run_with_stdin(&["enqueue", "-"], &lines);
        assert_eq!(batch.status.code(), Some(2), "{what}");
        assert_no_secret(what, &batch);
        let array = env.run_with_stdin(&["enqueue", "-"], format!("[{job}]"));
        assert_no_secret(what, &array);
        let file = env.path("jobs.jsonl");
        std::fs::write(&file, &lines).unwrap();
        let from_file = env.run(&["enqueue", "--file", file.to_str().unwrap()]);
        assert_no_secret(what, &from_file);
    }
    assert!(!env.queue_exists(), "nothing was enqueued");
}

#[test]
fn env_values_never_show_in_listings_logs_or_status() {
    let env = TestEnv::new();
    let job = format!(
        r#"{{"id":"deploy","command":"echo token has ${{#API_TOKEN}} chars; test ${{#API_TOKEN}} -eq 6","env":{{"API_TOKEN":"{SECRET}"}}}}"#
    );
    env.enqueue(&job);
    let worker = env
        .cmd()
        .env("QUEUECTL_LOG", "trace")
        .args(["worker", "run", "--drain", "--name", "w1"])
        .output()
        .unwrap();
    assert!(worker.status.success());
    assert_no_secret("worker log at trace level", &worker);
    assert_eq!(env.state("deploy"), "completed", "the job saw its env");
    for args in [
        &["show", "deploy"][..],
        &["--json", "show", "deploy"],
        &["list"],
        &["--json", "list"],
        &["status"],
        &["--json", "status"],
        &["logs", "deploy"],
        &["metrics"],
        &["--json", "restart", "deploy"],
        &["--json", "list", "--all"],
        &["--json", "cancel", "--all"],
        &["dlq", "list"],
    ] {
        assert_no_secret(&format!("{args:?}"), &env.run(args));
    }
    let shown = env.job("deploy");
    assert_eq!(shown["env_keys"], serde_json::json!(["API_TOKEN"]));
}

fn private_file(env: &TestEnv, name: &str, text: &str, mode: u32) -> String {
    let path = env.path(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

fn last_error(env: &TestEnv, id: &str) -> String {
    env.job(id)["attempt_history"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn env_file_values_reach_the_job_but_never_the_queue() {
    let env = TestEnv::new();
    let file = private_file(
        &env,
        "job.env",
        &format!("# deploy\nAPI_TOKEN={SECRET}\n"),
        0o600,
    );
    let seen = env.path("seen");
    env.enqueue(&format!(
        r#"{{"id":"deploy","command":"printf %s \"$API_TOKEN\" > {}","env_file":"{file}"}}"#,
        seen.display()
    ));
    env.ok(&["worker", "run", "--drain"]);
    assert_eq!(env.state("deploy"), "completed");
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), SECRET);
    let stored = env.queue_contents();
    assert!(
        !stored.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the value is in the queue"
    );
    assert_eq!(env.job("deploy")["env_file"], file.as_str());
}

#[test]
fn a_systemd_credential_can_be_the_env_file() {
    let env = TestEnv::new();
    let credentials = env.path("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(
        credentials.join("deploy-env"),
        format!("API_TOKEN={SECRET}\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        credentials.join("deploy-env"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    let seen = env.path("seen");
    env.enqueue(&format!(
        r#"{{"id":"deploy","command":"printf %s \"$API_TOKEN\" > {}","env_file":"deploy-env","max_retries":0}}"#,
        seen.display()
    ));
    let out = env
        .cmd()
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .args(["worker", "run", "--drain"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), SECRET);

    // A worker without credentials says what to add to its unit.
    env.enqueue(r#"{"id":"nocred","command":"true","env_file":"deploy-env","max_retries":0}"#);
    env.ok(&["worker", "run", "--drain"]);
    assert_eq!(env.state("nocred"), "dead");
    assert!(
        last_error(&env, "nocred").contains("LoadCredential=deploy-env:"),
        "{}",
        last_error(&env, "nocred")
    );
}

#[test]
fn an_unusable_env_file_fails_the_attempt_naming_the_file_not_a_value() {
    let env = TestEnv::new();
    let open = private_file(&env, "open.env", &format!("API_TOKEN={SECRET}\n"), 0o644);
    let broken = private_file(&env, "broken.env", &format!("API_TOKEN {SECRET}\n"), 0o600);
    let missing = env.path("missing.env").display().to_string();
    let marker = env.path("ran");
    for (id, file, why) in [
        ("open", &open, "other users can access it (mode 0644)"),
        ("broken", &broken, "line 1: expected KEY=VALUE"),
        ("missing", &missing, "No such file"),
    ] {
        env.enqueue(&format!(
            r#"{{"id":"{id}","command":"touch {}","env_file":"{file}","max_retries":0}}"#,
            marker.display()
        ));
        let worker = env.run(&["worker", "run", "--drain"]);
        assert_no_secret(id, &worker);
        assert_eq!(env.state(id), "dead", "{id}");
        let error = last_error(&env, id);
        assert!(
            error.contains(file.as_str()) && error.contains(why),
            "{id}: {error}"
        );
        assert!(!error.contains(SECRET), "{error}");
        assert_no_secret(id, &env.run(&["show", id]));
    }
    assert!(!marker.exists(), "no job ran without its env file");
}

#[test]
fn an_undecodable_env_column_stops_the_attempt_and_show_reports_it() {
    let env = TestEnv::new();
    if env.skips_on_postgres("corrupts the env column with SQL on the SQLite file") {
        return;
    }
    let marker = env.path("ran");
    env.enqueue(&format!(
        r#"{{"id":"corrupt","command":"touch {}","env":{{"A":"1"}},"max_retries":0}}"#,
        marker.display()
    ));
    env.sql("UPDATE jobs SET env = '{\"A\":' WHERE id = 'corrupt'");
    env.ok(&["worker", "run", "--drain"]);
    assert!(
        !marker.exists(),
        "the job was not run with an empty environment"
    );
    assert_eq!(env.state("corrupt"), "dead");
    assert!(last_error(&env, "corrupt").contains("cannot be decoded"));
    let shown = env.ok(&["show", "corrupt"]);
    assert!(shown.contains("CORRUPT"), "{shown}");
    assert!(env.job("corrupt")["env_error"].as_str().is_some());
}

#[test]
fn the_workers_database_password_never_reaches_a_job() {
    let env = TestEnv::new();
    let password_file = private_file(&env, "db-password", "hunter2\n", 0o600);
    env.enqueue(r#"{"id":"peek","command":"env"}"#);
    let out = env
        .cmd()
        .env("PGPASSWORD", "hunter2")
        .env("QUEUECTL_DB_PASSWORD_FILE", &password_file)
        .args(["worker", "run", "--drain"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(env.state("peek"), "completed");
    let seen = env.ok(&["logs", "peek"]);
    assert!(
        seen.contains("QUEUECTL_JOB_ID=peek"),
        "the job's env is there: {seen}"
    );
    for secret in ["hunter2", "PGPASSWORD", "QUEUECTL_DB_PASSWORD_FILE"] {
        assert!(!seen.contains(secret), "{secret} reached the job: {seen}");
    }
}

#[test]
fn a_database_password_is_never_shown() {
    let env = TestEnv::new();
    let url = "postgresql://queue:pw-s3cret@127.0.0.1:1/jobs";
    let shown = "postgresql://queue@127.0.0.1:1/jobs";
    // (output, whether it names the database)
    let outputs = [
        (env.run(&["config", "set", "db_path", url]), true),
        // $QUEUECTL_DB (the test's SQLite queue) wins over the config file here.
        (env.run(&["config", "get"]), false),
        (env.run(&["--db", url, "config", "get", "db_path"]), true),
        // Nothing listens on port 1: the error names the database, not the password.
        (env.run(&["--db", url, "list"]), true),
        (env.run(&["--db", url, "--json", "status"]), true),
        (
            env.run(&["--db", url, "worker", "start", "--count", "1"]),
            true,
        ),
    ];
    for (out, names_it) in &outputs {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!said.contains("pw-s3cret"), "the password is shown: {said}");
        assert!(
            !names_it || said.contains(shown),
            "the address is shown without its password: {said}"
        );
    }
    assert_eq!(
        outputs[3].0.status.code(),
        Some(1),
        "unreachable: a runtime failure"
    );
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(
        config.contains(url),
        "the config file (private) keeps what was set"
    );
}
