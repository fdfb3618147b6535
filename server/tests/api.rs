//! The city server over real HTTP (each test spawns it on port 0 with its own database, on
//! SQLite and PostgreSQL): enrolment, authentication, versions, limits, and idempotent push.
#![allow(clippy::unwrap_used)]
use serde_json::{json, Value};
use timebank_core::domain::hlc::Hlc;
use timebank_core::sql;
use timebank_server::{auth, AppState};

mod common;

/// A city server of one community on loopback (SQLite, or a fresh PostgreSQL database).
struct Server(common::City);

impl std::ops::Deref for Server {
    type Target = common::City;
    fn deref(&self) -> &common::City {
        &self.0
    }
}

async fn start(postgres: bool) -> Option<Server> {
    common::City::start(postgres, &["府苑新村"], Default::default())
        .await
        .map(Server)
}

impl Server {
    async fn stop(self) {
        self.0.stop().await;
    }
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("x-timebank-protocol", "1")
    }
    /// A newly enrolled device's token, the administrator and the first community.
    async fn desk(&self) -> (String, String, String) {
        (
            self.enrol().await,
            self.boot.admin_id.clone(),
            self.boot.community_ids[0].clone(),
        )
    }

    /// The text of `/metrics`.
    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample of `/metrics` (its name, with its labels if any).
    async fn sample<T: std::str::FromStr>(&self, series: &str) -> T {
        let m = self.metrics().await;
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} is not in {m}"))
    }

    /// A counter of `/metrics`.
    async fn metric(&self, name: &str) -> u64 {
        self.sample(name).await
    }

    /// The time pushes' transactions have spent in one phase, from `/metrics`.
    async fn phase_seconds(&self, phase: &str) -> f64 {
        self.sample(&format!(
            "timebank_push_phase_seconds_total{{phase=\"{phase}\"}}"
        ))
        .await
    }

    async fn enrol(&self) -> String {
        self.enrol_as(&self.boot.center_id, "center").await
    }

    /// A token of a device newly enrolled for `center` with `role` (center or volunteer).
    async fn enrol_as(&self, center: &str, role: &str) -> String {
        let code = auth::issue_code(&self.db, center, role, 1, timebank_core::service::now_ms())
            .await
            .unwrap();
        let r: Value = self
            .post("/v1/enrol")
            .json(&json!({"code": code, "device_name": "前台电脑"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["token"].as_str().unwrap().to_owned()
    }
}

fn mutation(seq: i64, name: &str, args: Value, actor: &str) -> Value {
    let hlc = Hlc {
        millis: timebank_core::service::now_ms() - 1000,
        counter: seq as u32,
        node: "dev".into(),
    };
    json!({"id": uuid::Uuid::now_v7().to_string(), "seq": seq, "name": name, "args": args, "hlc": hlc.encode(), "schema_version": timebank_migrations::SCHEMA_VERSION, "actor_id": actor})
}

fn register(id: &str, phone: &str, community: &str) -> Value {
    json!({"member_id": id, "name": "张桂英", "phone": phone, "date_of_birth": "1945-03-02", "home_community_id": community, "address": "3幢", "roles": ["resident"], "hardship": false, "center_id": null, "volunteer": null})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_openapi_document_are_served() {
    let s = start(false).await.unwrap();
    let h: Value = reqwest::get(format!("{}/health", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let doc: Value = reqwest::get(format!("{}/openapi.json", s.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/push"]["post"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["PushMutation"].is_object());
    let m = s.metrics().await;
    assert!(
        m.contains("# TYPE timebank_mutations_applied_total counter"),
        "{m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_enrols_one_device_once_and_bad_requests_are_refused() {
    let s = start(false).await.unwrap();
    let code = auth::issue_code(
        &s.db,
        &s.boot.center_id,
        "center",
        1,
        timebank_core::service::now_ms(),
    )
    .await
    .unwrap();
    let r = s
        .post("/v1/enrol")
        .json(&json!({"code": code, "device_name": "前台"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["communities"].as_array().unwrap().len(), 1);
    let token = e["token"].as_str().unwrap().to_owned();
    // The token is stored hashed only.
    let stored = sql::scalar_i64(
        &s.db,
        "SELECT COUNT(*) FROM sync_devices WHERE token_hash = ?",
        vec![token.clone().into()],
    )
    .await
    .unwrap();
    assert_eq!(stored, 0);
    let again = s
        .post("/v1/enrol")
        .json(&json!({"code": code, "device_name": "另一台"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403, "a code works once");
    let bad = s
        .post("/v1/enrol")
        .json(&json!({"code": "AAAA-BBBB-CCCC", "device_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
    // Unauthenticated, a wrong token, an old protocol, a malformed and an oversized body.
    let body = json!({"mutations": []});
    assert_eq!(
        s.post("/v1/push")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        s.post("/v1/push")
            .bearer_auth("nope")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let old = reqwest::Client::new()
        .post(format!("{}/v1/push", s.base))
        .header("x-timebank-protocol", "0")
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 426);
    let err: Value = old.json().await.unwrap();
    assert!(
        err["message"].as_str().unwrap().contains("软件版本过旧"),
        "{err}"
    );
    let malformed = s
        .post("/v1/push")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(malformed.status().is_client_error());
    // An oversized body is refused from its announced length, before it is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "POST /v1/push HTTP/1.1\r\nhost: x\r\nx-timebank-protocol: 1\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            timebank_server::MAX_BODY + 10
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 64];
        let n = tcp.read(&mut buf).await.unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(first.starts_with("HTTP/1.1 413"), "{first}");
    }
    // A revoked token is refused.
    let device = e["device_id"].as_str().unwrap();
    assert!(
        auth::revoke(&s.db, device, timebank_core::service::now_ms())
            .await
            .unwrap()
    );
    assert_eq!(
        s.post("/v1/push")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_mutations_apply_once_and_rejections_never_block() {
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let (token, admin, community) = s.desk().await;
        let batch = json!({"mutations": [
            mutation(1, "register_member", register("m1", "13811112222", &community), &admin),
            // Refused: the same phone again. It is stored and reported, and does not block seq 3.
            mutation(2, "register_member", register("m2", "13811112222", &community), &admin),
            mutation(3, "register_member", register("m3", "13811113333", &community), &admin),
            mutation(4, "no_such_thing", json!({}), &admin),
        ]});
        let (r, st) = s.push_batch(&token, &batch).await;
        assert_eq!(st, ["applied", "rejected", "applied", "rejected"], "{r}");
        assert_eq!(r["results"][1]["result"]["code"], "duplicate_phone");
        assert_eq!(r["next_seq"], 5);
        // The duplicate phone is only found when the held-back inserts are sent: the batch is
        // applied again statement by statement, which tells which mutation it was.
        assert_eq!(s.metric("timebank_push_batches_careful_total").await, 1);
        // Two transactions, the first try and the careful pass, timed phase by phase; only
        // the careful pass got as far as its commit.
        assert_eq!(s.metric("timebank_push_transactions_total").await, 2);
        for phase in ["begin", "apply", "flush", "record", "log", "commit"] {
            assert!(
                s.phase_seconds(phase).await > 0.0,
                "no time counted for {phase}:\n{}",
                s.metrics().await
            );
        }
        // The admin is told why, in the inbox.
        let told = sql::scalar_i64(
            &s.db,
            "SELECT COUNT(*) FROM inbox_messages WHERE member_id = ? AND kind = 'sync_rejected'",
            vec![admin.clone().into()],
        )
        .await
        .unwrap();
        assert_eq!(told, 2);
        // The same batch again: the stored results, nothing applied twice.
        let members_before = sql::scalar_i64(&s.db, "SELECT COUNT(*) FROM members", vec![])
            .await
            .unwrap();
        let again: Value = s
            .post("/v1/push")
            .bearer_auth(&token)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            again["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["duplicate"] == true),
            "{again}"
        );
        assert_eq!(again["results"][0]["result"], r["results"][0]["result"]);
        assert_eq!(
            sql::scalar_i64(&s.db, "SELECT COUNT(*) FROM members", vec![])
                .await
                .unwrap(),
            members_before
        );
        // A gap (seq 6 without 5) stops the batch and names the sequence to send.
        let gap: Value = s.post("/v1/push").bearer_auth(&token).json(&json!({"mutations": [mutation(6, "register_member", register("m6", "13811116666", &community), &admin)]})).send().await.unwrap().json().await.unwrap();
        assert_eq!(gap["results"].as_array().unwrap().len(), 0);
        assert_eq!(gap["next_seq"], 5);
        // The audit trail names the device that made the change.
        let dev = sql::scalar_i64(&s.db, "SELECT COUNT(*) FROM audit_log a JOIN sync_devices d ON d.id = a.device_id WHERE a.entity_id = 'm1'", vec![]).await.unwrap();
        assert_eq!(dev, 1);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_batch_each_mutation_is_judged_for_its_own_actor() {
    // The server keeps an actor loaded for the next mutations of a batch: an unknown actor
    // between two of the administrator's is still refused, and a command that may change
    // members (a PIN) does not make the later ones fail or pass wrongly.
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let (token, admin, community) = s.desk().await;
        let pin = timebank_core::service::members::hash_pin("2580").unwrap();
        let batch = json!({"mutations": [
            mutation(1, "register_member", register("m1", "13811112222", &community), &admin),
            mutation(2, "register_member", register("m2", "13811113333", &community), "nobody"),
            mutation(3, "register_member", register("m3", "13811114444", &community), &admin),
            mutation(4, "set_pin", json!({"member_id": admin, "pin_hash": pin}), &admin),
            mutation(5, "register_member", register("m5", "13811115555", &community), &admin),
            // m1 is a resident: registering others is for staff, in the same batch as ever.
            mutation(6, "register_member", register("m6", "13811116666", &community), "m1"),
        ]});
        let (r, status) = s.push_batch(&token, &batch).await;
        assert_eq!(
            status,
            ["applied", "rejected", "applied", "applied", "applied", "rejected"],
            "{r}"
        );
        // Refused before they wrote anything: undone by dropping their held rows, the batch
        // is not applied a second time.
        assert_eq!(s.metric("timebank_push_batches_careful_total").await, 0);
        assert_eq!(r["results"][1]["result"]["code"], "not_found", "{r}");
        assert_eq!(r["results"][5]["result"]["code"], "forbidden", "{r}");
        let members: Vec<String> = sql::all(
            &s.db,
            "SELECT id FROM members WHERE id IN ('m1', 'm2', 'm3', 'm5', 'm6') ORDER BY id",
            vec![],
        )
        .await
        .unwrap()
        .iter()
        .map(|x| x.try_get("", "id").unwrap())
        .collect();
        assert_eq!(members, ["m1", "m3", "m5"]);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_last_seen_time_is_written_at_most_once_a_minute() {
    // A write per request would queue every request behind the pushes for the write lock.
    let s = start(false).await.unwrap();
    let (token, _, _) = s.desk().await;
    let seen = || async {
        sql::scalar_i64(
            &s.db,
            "SELECT last_seen_at FROM sync_devices WHERE token_hash = ?",
            vec![auth::hash(&token).into()],
        )
        .await
        .unwrap()
    };
    let enrolled = seen().await;
    assert!(enrolled > 0, "enrolment is the first sighting");
    let later = enrolled + auth::LAST_SEEN_PRECISION_MS - 1;
    assert!(auth::authenticate(&s.db, &token, later)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        seen().await,
        enrolled,
        "within the minute nothing is written"
    );
    let much_later = enrolled + auth::LAST_SEEN_PRECISION_MS;
    assert!(auth::authenticate(&s.db, &token, much_later)
        .await
        .unwrap()
        .is_some());
    assert_eq!(seen().await, much_later);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_write_for_another_community() {
    let s = start(false).await.unwrap();
    // A second center that serves no community of the first.
    sql::exec(&s.db, "INSERT INTO centers (id, name_zh, name_en, subdistrict_id) VALUES ('c2', '别的中心', 'Other', ?)", vec![s.boot.subdistrict_id.clone().into()]).await.unwrap();
    let token = s.enrol_as("c2", "center").await;
    let community = s.boot.community_ids[0].clone();
    let r: Value = s
        .post("/v1/push")
        .bearer_auth(&token)
        .json(&json!({"mutations": [mutation(1, "register_member", register("m1", "13811112222", &community), &s.boot.admin_id)]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["status"], "rejected");
    assert_eq!(r["results"][0]["result"]["code"], "out_of_scope");
    assert_eq!(
        sql::scalar_i64(
            &s.db,
            "SELECT COUNT(*) FROM members WHERE id = 'm1'",
            vec![]
        )
        .await
        .unwrap(),
        0
    );
    s.stop().await;
}

/// Whatever member a device says acts, the city server lets them do no more than the device's
/// enrolment grants: on a volunteer's device the administrator named by a mutation has no staff
/// or administrator powers (and cannot change the PIN that carries them), and on a center's
/// device the administrator acts as staff only for that center's communities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_acts_with_no_more_powers_than_its_enrolment_grants() {
    let s = common::City::start(false, &["府苑新村", "蒋村花园"], Default::default())
        .await
        .map(Server)
        .unwrap();
    let (home, other) = (
        s.boot.community_ids[0].clone(),
        s.boot.community_ids[1].clone(),
    );
    // The second community moves to a center of its own: the first serves the administrator's.
    sql::exec(&s.db, "INSERT INTO centers (id, name_zh, name_en, subdistrict_id) VALUES ('c2', '蒋村花园服务站', 'Station', ?)", vec![s.boot.subdistrict_id.clone().into()]).await.unwrap();
    sql::exec(
        &s.db,
        "UPDATE center_communities SET center_id = 'c2' WHERE community_id = ?",
        vec![other.clone().into()],
    )
    .await
    .unwrap();
    let admin = s.boot.admin_id.clone();
    let pin_before = common::rows(
        &s.db,
        &format!("SELECT pin_hash AS c0 FROM members WHERE id = '{admin}'"),
    )
    .await;
    let desk = s.enrol_as(&s.boot.center_id, "center").await;
    let batch = json!({"mutations": [
        mutation(1, "register_member", register("m-home", "13811113331", &home), &admin),
        mutation(2, "register_member", register("m-other", "13811113332", &other), &admin),
    ]});
    let (r, status) = s.push_batch(&desk, &batch).await;
    assert_eq!(status, ["applied", "rejected"], "{r}");
    assert_eq!(r["results"][1]["result"]["code"], "out_of_scope", "{r}");

    let laptop = s.enrol_as(&s.boot.center_id, "volunteer").await;
    let pin_hash = timebank_core::service::members::hash_pin("135790").unwrap();
    let batch = json!({"mutations": [
        mutation(1, "register_member", register("m-laptop", "13811113333", &home), &admin),
        mutation(2, "set_pin", json!({"member_id": admin, "pin_hash": pin_hash}), &admin),
    ]});
    let (r, status) = s.push_batch(&laptop, &batch).await;
    assert_eq!(status, ["rejected", "rejected"], "{r}");
    for i in 0..2 {
        assert_eq!(r["results"][i]["result"]["code"], "forbidden", "{r}");
    }
    assert_eq!(
        common::rows(
            &s.db,
            "SELECT id AS c0 FROM members WHERE id LIKE 'm-%' ORDER BY id"
        )
        .await,
        ["m-home"],
        "only the member registered within the desk's powers is stored"
    );
    assert_eq!(
        common::rows(
            &s.db,
            &format!("SELECT pin_hash AS c0 FROM members WHERE id = '{admin}'"),
        )
        .await,
        pin_before,
        "the administrator's PIN is unchanged"
    );
    s.stop().await;
}

/// A device updated before the city server pushes mutations of a schema the server does not
/// know yet: the whole push is refused, saying to update the server, and nothing is recorded,
/// so the same mutations go through once the server knows them (here: sent again as of the
/// server's schema).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_from_an_app_newer_than_the_server_is_refused_whole_and_nothing_is_recorded() {
    let s = start(false).await.unwrap();
    let (token, admin, community) = s.desk().await;
    let mut m = mutation(
        1,
        "register_member",
        register("m-new", "13811114441", &community),
        &admin,
    );
    m["schema_version"] = json!(timebank_migrations::SCHEMA_VERSION + 1);
    let r = s
        .post("/v1/push")
        .bearer_auth(&token)
        .json(&json!({"mutations": [m.clone()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_input", "{body}");
    assert_eq!(body["detail"]["field"], "schema_version", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("城市服务器的软件比本机的旧"), "{body}");
    let recorded = || async {
        sql::scalar_i64(&s.db, "SELECT COUNT(*) FROM push_results", vec![])
            .await
            .unwrap()
    };
    assert_eq!(recorded().await, 0, "nothing recorded");
    m["schema_version"] = json!(timebank_migrations::SCHEMA_VERSION);
    let (r, status) = s.push_batch(&token, &json!({"mutations": [m]})).await;
    assert_eq!(status, ["applied"], "{r}");
    assert_eq!(recorded().await, 1);
    s.stop().await;
}

impl Server {
    /// Push `batch` with `token`: the answer and each result's status, in order.
    async fn push_batch(&self, token: &str, batch: &Value) -> (Value, Vec<String>) {
        let r: Value = self
            .post("/v1/push")
            .bearer_auth(token)
            .json(batch)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = r["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["status"].as_str().unwrap().to_owned())
            .collect();
        (r, status)
    }

    async fn pull(&self, token: &str, community: &str, after: i64, limit: i64) -> Value {
        reqwest::Client::new()
            .get(format!("{}/v1/pull", self.base))
            .query(&[
                ("community", community.to_owned()),
                ("after", after.to_string()),
                ("limit", limit.to_string()),
            ])
            .header("x-timebank-protocol", "1")
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn seqs(page: &Value) -> Vec<i64> {
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_follows_the_change_log_from_zero_in_pages() {
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let token = s.enrol().await;
        let community = s.boot.community_ids[0].clone();
        // City-wide reference data: the places, the catalogue, the programme.
        let city = s.pull(&token, "*", 0, 5000).await;
        let tables: std::collections::BTreeSet<&str> = city["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["table"].as_str().unwrap())
            .collect();
        for t in [
            "places",
            "centers",
            "services",
            "service_fields",
            "programmes",
        ] {
            assert!(
                tables.contains(t),
                "{t} missing from the city partition: {tables:?}"
            );
        }
        // The community: the administrator registered at bootstrap, with an account.
        let full = s.pull(&token, &community, 0, 5000).await;
        let n = full["changes"].as_array().unwrap().len() as i64;
        assert!(n > 0);
        assert_eq!(seqs(&full), (1..=n).collect::<Vec<_>>(), "gap-free from 1");
        assert_eq!(full["head"], n);
        assert_eq!(full["next_after"], n);
        // Pages of 2 walk the same log, each with a checksum of its content.
        let mut after = 0;
        let mut walked = Vec::new();
        loop {
            let p = s.pull(&token, &community, after, 2).await;
            let changes: Vec<timebank_server::pull::Change> =
                serde_json::from_value(p["changes"].clone()).unwrap();
            assert_eq!(p["checksum"], timebank_server::pull::checksum(&changes));
            if changes.is_empty() {
                break;
            }
            walked.extend(seqs(&p));
            after = p["next_after"].as_i64().unwrap();
        }
        assert_eq!(walked, (1..=n).collect::<Vec<_>>());
        // A push adds its rows after the head; pulling the same cursor twice gives the same page.
        let admin = s.boot.admin_id.clone();
        let r: Value = s.post("/v1/push").bearer_auth(&token).json(&json!({"mutations": [mutation(1, "register_member", register("m1", "13811112222", &community), &admin)]})).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["results"][0]["status"], "applied");
        let next = s.pull(&token, &community, n, 5000).await;
        let again = s.pull(&token, &community, n, 5000).await;
        assert_eq!(next, again);
        let added: Vec<(String, String)> = next["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["table"].as_str().unwrap().to_owned(),
                    c["pk"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            added.contains(&("members".into(), "m1".into())),
            "{added:?}"
        );
        assert!(
            added.contains(&("member_roles".into(), "m1|resident".into())),
            "{added:?}"
        );
        assert!(
            added.contains(&("accounts".into(), "acct-m1".into())),
            "{added:?}"
        );
        assert_eq!(seqs(&next).first(), Some(&(n + 1)));
        // Another community's partition is refused.
        let other = reqwest::Client::new()
            .get(format!("{}/v1/pull", s.base))
            .query(&[("community", "not-mine")])
            .header("x-timebank-protocol", "1")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 403);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_keep_the_log_gap_free() {
    let Some(s) = start(true).await else { return };
    // A second server instance on the same database, on its own port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base2 = format!("http://{}", listener.local_addr().unwrap());
    let state2 = AppState::open(s.db.clone()).await.unwrap();
    let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        timebank_server::serve(listener, state2, async {
            let _ = rx2.await;
        })
        .await
        .unwrap();
    });
    let community = s.boot.community_ids[0].clone();
    let admin = s.boot.admin_id.clone();
    let (t1, t2) = (s.enrol().await, s.enrol().await);
    let push = |base: String, token: String, prefix: &'static str| {
        let community = community.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            for i in 0..15i64 {
                let body = json!({"mutations": [mutation(i + 1, "register_member", register(&format!("{prefix}{i}"), &format!("138{}{:07}", if prefix == "a" { 1 } else { 2 }, i), &community), &admin)]});
                let r: Value = reqwest::Client::new()
                    .post(format!("{base}/v1/push"))
                    .header("x-timebank-protocol", "1")
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(r["results"][0]["status"], "applied", "{r}");
            }
        })
    };
    let a = push(s.base.clone(), t1.clone(), "a");
    let b = push(base2.clone(), t2, "b");
    a.await.unwrap();
    b.await.unwrap();
    let page = s.pull(&t1, &community, 0, 5000).await;
    let n = page["head"].as_i64().unwrap();
    assert_eq!(
        seqs(&page),
        (1..=n).collect::<Vec<_>>(),
        "gap-free and unique across both servers"
    );
    let members = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["table"] == "members")
        .count();
    assert_eq!(
        members, 31,
        "the administrator and the 30 registered members"
    );
    let _ = tx2.send(());
    s.stop().await;
}

/// A city server beside its PostgreSQL on one machine, reaching it through the Unix socket
/// (README: no TCP and no TLS on the loopback): its connections are the socket's, and a
/// registration pushed from one device reaches another. The socket comes from
/// TIMEBANK_PG_SOCKET_URL (scripts/test.sh; by default Debian's `/var/run/postgresql`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_server_reaches_postgresql_through_its_unix_socket() {
    use timebank_core::service::{execute, outbox, Ctx};
    use timebank_core::sync::{self, http::Http};
    let socket = std::env::var("TIMEBANK_PG_SOCKET_URL").unwrap_or_else(|_| {
        "postgres://postgres@localhost/postgres?host=/var/run/postgresql".into()
    });
    assert!(socket.contains("host=/"), "not a socket's URL: {socket}");
    let Some(c) = common::City::start_on(Some(&socket), &["府苑新村"], Default::default()).await
    else {
        return;
    };
    assert!(c.url.contains("?host=/"), "{}", c.url);
    // A Unix socket's connection has no client address.
    let on_socket = sql::scalar_i64(
        &c.db,
        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = pg_backend_pid() AND client_addr IS NULL",
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(on_socket, 1, "the city's connection is not the socket's");
    let a = c.device("a").await;
    let ctx = Ctx::new(
        &c.boot.admin_id,
        outbox::device_id(&a).await.unwrap(),
        timebank_core::service::now_ms(),
    );
    let community = c.boot.community_ids[0].clone();
    execute(
        &a,
        &ctx,
        common::register("s-1", "吴秀英", "13722223333", &community, false),
    )
    .await
    .unwrap();
    let r = sync::sync_once(&a, &Http::new(&c.base)).await.unwrap();
    assert_eq!(r.pushed, 1, "{r:?}");
    let b = c.device("b").await;
    assert_eq!(
        sql::scalar_i64(
            &b,
            "SELECT COUNT(*) FROM members WHERE id = 's-1' AND name = '吴秀英'",
            vec![]
        )
        .await
        .unwrap(),
        1,
        "the registration reached the second device"
    );
    c.stop().await;
}

/// Server processes starting at the same moment on one PostgreSQL database each install the
/// change capture; they take turns instead of failing ("tuple concurrently updated").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_at_once_on_one_postgres_database_all_start() {
    let Some(s) = start(true).await else { return };
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let db = s.db.clone();
        opening.spawn(async move { AppState::open(db).await.map(|_| ()) });
    }
    while let Some(r) = opening.join_next().await {
        r.unwrap().unwrap();
    }
    s.stop().await;
}

fn mutation_at(seq: i64, name: &str, args: Value, actor: &str, millis: i64, node: &str) -> Value {
    let hlc = Hlc {
        millis,
        counter: 0,
        node: node.into(),
    };
    json!({"id": uuid::Uuid::now_v7().to_string(), "seq": seq, "name": name, "args": args, "hlc": hlc.encode(), "at": millis, "schema_version": timebank_migrations::SCHEMA_VERSION, "actor_id": actor})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_profile_edits_are_decided_per_field_by_hlc_and_the_loser_is_kept_for_staff() {
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let (a, b) = (s.enrol().await, s.enrol().await);
        let admin = s.boot.admin_id.clone();
        let community = s.boot.community_ids[0].clone();
        let push = |token: String, body: Value| {
            let req = s.post("/v1/push").bearer_auth(token).json(&body);
            async move {
                let r: Value = req.send().await.unwrap().json().await.unwrap();
                r
            }
        };
        let now = timebank_core::service::now_ms();
        let r = push(a.clone(), json!({"mutations": [mutation_at(1, "register_member", register("m1", "13811112222", &community), &admin, now - 60_000, "devA")]})).await;
        assert_eq!(r["results"][0]["status"], "applied", "{r}");
        let seen = json!({"name": "张桂英", "phone": "13811112222", "address": "3幢"});
        // Both devices edit the address and the name offline. B's address edit is the later
        // one and arrives first; A's name edit is the later one and arrives second.
        let r = push(b.clone(), json!({"mutations": [mutation_at(1, "update_member", json!({"member_id": "m1", "name": "张桂英B", "address": "B楼", "seen": seen}), &admin, now - 10_000, "devB")]})).await;
        assert_eq!(r["results"][0]["status"], "applied", "{r}");
        let r = push(a.clone(), json!({"mutations": [mutation_at(2, "update_member", json!({"member_id": "m1", "name": "张桂英A", "address": "A楼", "seen": seen}), &admin, now - 20_000, "devA")]})).await;
        assert_eq!(r["results"][0]["status"], "applied", "{r}");
        let r = push(a.clone(), json!({"mutations": [mutation_at(3, "update_member", json!({"member_id": "m1", "name": "张桂英A2", "seen": {"name": "张桂英A", "phone": "13811112222", "address": "3幢"}}), &admin, now - 5_000, "devA")]})).await;
        assert_eq!(r["results"][0]["status"], "applied", "{r}");
        let row = sql::all(
            &s.db,
            "SELECT name, address FROM members WHERE id = 'm1'",
            vec![],
        )
        .await
        .unwrap();
        let name: String = row[0].try_get("", "name").unwrap();
        let address: String = row[0].try_get("", "address").unwrap();
        // The address: B's later edit stays although A's arrived after it.
        assert_eq!(address, "B楼");
        // The name: A's edits are later than B's; the last (seen 张桂英A, now 张桂英B) still wins by HLC.
        assert_eq!(name, "张桂英A2");
        // Nothing is lost: staff are told of every value that did not win.
        let notes = sql::all(
            &s.db,
            "SELECT params FROM inbox_messages WHERE kind = 'profile_conflict'",
            vec![],
        )
        .await
        .unwrap();
        assert!(!notes.is_empty(), "staff were not told of the conflict");
        let text: String = notes
            .iter()
            .map(|r| r.try_get::<String>("", "params").unwrap())
            .collect();
        assert!(text.contains("A楼"), "the losing address is kept: {text}");
        assert!(
            text.contains("张桂英B"),
            "the overwritten name is kept: {text}"
        );
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_batch_a_change_of_the_rules_holds_for_the_mutations_after_it() {
    // The server keeps the programme's rules loaded for the next mutations of a batch: a
    // change of the rules in the middle of a batch drops them, so the registration after it
    // gets the new sign-up bonus and the one before it the old.
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let (token, admin, community) = s.desk().await;
        let volunteer = |id: &str, phone: &str| {
            let mut r = register(id, phone, &community);
            r["roles"] = json!(["resident", "volunteer"]);
            r["date_of_birth"] = json!("1985-03-02");
            r["volunteer"] = json!({"service_fields": [], "skills": "", "availability": ""});
            r
        };
        let old = timebank_core::domain::Rules::default().signup_bonus;
        let new_rules = timebank_core::domain::Rules {
            signup_bonus: old + 45,
            ..Default::default()
        };
        let batch = json!({"mutations": [
            mutation(1, "register_member", volunteer("v1", "13811112222"), &admin),
            mutation(2, "set_rules", serde_json::to_value(&new_rules).unwrap(), &admin),
            mutation(3, "register_member", volunteer("v2", "13811113333"), &admin),
        ]});
        let (r, status) = s.push_batch(&token, &batch).await;
        assert_eq!(status, ["applied", "applied", "applied"], "{r}");
        let balances: Vec<i64> = sql::all(
            &s.db,
            "SELECT balance FROM accounts WHERE member_id IN ('v1', 'v2') ORDER BY member_id",
            vec![],
        )
        .await
        .unwrap()
        .iter()
        .map(|x| x.try_get("", "balance").unwrap())
        .collect();
        assert_eq!(balances, [old, old + 45]);
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_delivered_twice_at_once_is_applied_once_and_both_answers_agree() {
    // A device's retry can reach the server while the first delivery is still being applied
    // (on PostgreSQL, by another server process): the later one to record its results is
    // rolled back and answered from what the first recorded.
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let (token, admin, community) = s.desk().await;
        let batch = json!({"mutations": (1..=20)
            .map(|i| mutation(i, "register_member", register(&format!("m{i}"), &format!("1381111{i:04}"), &community), &admin))
            .collect::<Vec<_>>()});
        let ((a, sa), (b, sb)) =
            tokio::join!(s.push_batch(&token, &batch), s.push_batch(&token, &batch));
        assert_eq!(sa, vec!["applied"; 20], "{a}");
        assert_eq!(sb, vec!["applied"; 20], "{b}");
        for i in 0..20 {
            let firsts = [&a, &b]
                .iter()
                .filter(|r| r["results"][i]["duplicate"] == false)
                .count();
            assert_eq!(firsts, 1, "mutation {i}: {a} {b}");
            assert_eq!(
                a["results"][i]["result"], b["results"][i]["result"],
                "the same answer twice"
            );
        }
        let n = sql::scalar_i64(
            &s.db,
            "SELECT COUNT(*) FROM members WHERE id LIKE 'm%'",
            vec![],
        )
        .await
        .unwrap();
        let recorded = sql::scalar_i64(&s.db, "SELECT COUNT(*) FROM push_results", vec![])
            .await
            .unwrap();
        let audited = sql::scalar_i64(
            &s.db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'register_member'",
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(
            (n, recorded, audited),
            (20, 20, 20),
            "applied, answered and audited once each"
        );
        assert_eq!(
            s.metric("timebank_push_results_stored_total").await,
            recorded as u64,
            "the server counts each stored result once, the duplicate delivery's none"
        );
        s.stop().await;
    }
}

/// Batches that arrive while another is being applied wait, and are then applied together in
/// one transaction (group commit). A group where one batch needs the careful pass (it
/// registers a phone another batch of the group registers too) is rolled back and each batch
/// applied on its own. Either way every batch gets the answer it would have got alone: each
/// registration applied once, the second of the two phones refused, every device's next
/// sequence right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_that_arrive_together_are_applied_in_one_transaction_and_answered_as_if_alone() {
    for postgres in [false, true] {
        let Some(s) = start(postgres).await else {
            continue;
        };
        let (admin, community) = (s.boot.admin_id.clone(), s.boot.community_ids[0].clone());
        let mut tokens = Vec::new();
        for _ in 0..12 {
            tokens.push(s.enrol().await);
        }
        let (mut tries, mut clashes) = (0, 0);
        while tries < 10 {
            let base = tries * 20;
            let clash = tries % 2 == 1;
            let batches: Vec<Value> = (0..tokens.len())
                .map(|d| {
                    json!({"mutations": (1..=20).map(|i| {
                        // Every other round, device 1's fifth registration has the phone
                        // of device 0's fifth.
                        let of = if clash && d == 1 && i == 5 { 0 } else { d };
                        let phone = format!("17{tries}{of:02}{i:06}");
                        mutation(base + i, "register_member", register(&format!("t{tries}d{d}m{i}"), &phone, &community), &admin)
                    }).collect::<Vec<_>>()})
                })
                .collect();
            let answers = futures_util::future::join_all(
                tokens.iter().zip(&batches).map(|(t, b)| s.push_batch(t, b)),
            )
            .await;
            let mut refused = Vec::new();
            for (d, (r, st)) in answers.iter().enumerate() {
                assert_eq!(r["next_seq"], base + 21, "device {d}: {r}");
                for (i, x) in st.iter().enumerate() {
                    if x != "applied" {
                        refused.push((d, i + 1, r["results"][i]["result"]["code"].clone()));
                    }
                }
            }
            if clash {
                assert_eq!(
                    refused.len(),
                    1,
                    "only the second of the two phones: {refused:?}"
                );
                let (d, i, code) = &refused[0];
                assert!(
                    *d <= 1 && *i == 5 && code == "duplicate_phone",
                    "{refused:?}"
                );
                clashes += 1;
            } else {
                assert_eq!(refused, vec![], "nothing refused");
            }
            let registered = sql::scalar_i64(
                &s.db,
                "SELECT COUNT(*) FROM members WHERE id LIKE ?",
                vec![format!("t{tries}d%").into()],
            )
            .await
            .unwrap();
            assert_eq!(registered, 12 * 20 - i64::from(clash));
            tries += 1;
            if s.metric("timebank_push_groups_total").await > 0
                && s.metric("timebank_push_groups_split_total").await > 0
            {
                break;
            }
        }
        assert!(
            s.metric("timebank_push_groups_total").await > 0
                && s.metric("timebank_push_groups_split_total").await > 0,
            "in {tries} rounds of twelve devices at once, batches were grouped and a group split:\n{}",
            s.metrics().await
        );
        let (applied, recorded) = (
            s.metric("timebank_mutations_applied_total").await,
            sql::scalar_i64(&s.db, "SELECT COUNT(*) FROM push_results", vec![])
                .await
                .unwrap(),
        );
        assert_eq!(
            recorded as u64,
            tries as u64 * 12 * 20,
            "every mutation answered once"
        );
        assert_eq!(applied, tries as u64 * 12 * 20 - clashes);
        assert_eq!(
            s.metric("timebank_push_results_stored_total").await,
            recorded as u64,
            "results of the groups rolled back and applied again are counted once, when committed"
        );
        s.stop().await;
    }
}
