//! City-wide data: hours earned in one community are spent in another (通存通兑), through a
//! center device and the city server, and the city's dashboard figures across every
//! community come from the server to center devices only.
#![allow(clippy::unwrap_used)]
mod common;
use common::{order, register, rows, serve_visit, City, Intercept, Through};
use serde_json::Value;
use timebank_core::domain::{ConfirmMethod, Payer, Relation, Rules, Vetting};
use timebank_core::service::command::*;
use timebank_core::service::{execute, new_id, outbox, Ctx};
use timebank_core::sync::{self, http::Http, Transport};

const MIN: i64 = 60_000;

async fn run(postgres: bool) {
    // Residents pay for help from their own accounts (赵大爷 may go an hour below zero), so
    // the hours given to 陈秀英 in another community are what she spends.
    let rules = Rules {
        payer: Payer::Beneficiary,
        overdraft_limit: 60,
        ..Default::default()
    };
    let Some(c) = City::start(postgres, &["府苑新村", "蒋村花园"], rules).await else {
        return;
    };
    let (a_comm, b_comm) = (
        c.boot.community_ids[0].clone(),
        c.boot.community_ids[1].clone(),
    );
    let d = c.device("desk").await;
    let http = Http::new(&c.base);
    let dev = outbox::device_id(&d).await.unwrap();
    let admin = c.boot.admin_id.clone();
    let t0 = timebank_core::service::now_ms() - 8 * 60 * MIN;
    let run_at = |who: &str, at: i64, cmd: Command| {
        let (d, ctx) = (d.clone(), Ctx::new(who, &dev, at));
        async move { execute(&d, &ctx, cmd).await.unwrap() }
    };
    // 李伟 volunteers in 府苑新村; his mother 陈秀英 lives in 蒋村花园.
    run_at(
        &admin,
        t0,
        register("r-a", "赵大爷", "13700000001", &a_comm, false),
    )
    .await;
    run_at(
        &admin,
        t0,
        register("v-a", "李伟", "13800000001", &a_comm, true),
    )
    .await;
    run_at(
        &admin,
        t0,
        register("m-b", "陈秀英", "13700000002", &b_comm, false),
    )
    .await;
    run_at(
        &admin,
        t0,
        register("v-b", "孙丽", "13800000002", &b_comm, true),
    )
    .await;
    for v in ["v-a", "v-b"] {
        run_at(
            &admin,
            t0,
            Command::SetVetting {
                member_id: v.into(),
                vetting: Vetting::Verified,
            },
        )
        .await;
    }
    run_at(
        &admin,
        t0,
        Command::LinkFamily {
            member_id: "m-b".into(),
            relative_id: "v-a".into(),
            relation: Relation::Child,
        },
    )
    .await;
    // An hour of help served by 李伟 in 府苑新村 …
    let serve = |order_id: &'static str, v: &'static str, at: i64| {
        let (d, dev, run_at, admin) = (&d, &dev, &run_at, admin.clone());
        async move {
            serve_visit(d, dev, v, order_id, at, 60, None).await;
            run_at(
                &admin,
                at + 62 * MIN,
                Command::ConfirmVisit {
                    visit_id: None,
                    order_id: order_id.into(),
                    method: ConfirmMethod::Staff,
                    pin: None,
                    confirms: None,
                },
            )
            .await;
        }
    };
    run_at(&admin, t0 + MIN, order("o-a", "r-a")).await;
    serve("o-a", "v-a", t0 + 2 * MIN).await;
    // … given to his mother in 蒋村花园, who spends it on help there.
    let gift = new_id();
    run_at(
        "v-a",
        t0 + 70 * MIN,
        Command::Gift {
            transfer_id: gift.clone(),
            to_member_id: "m-b".into(),
            minutes: 60,
            note: "给妈妈".into(),
        },
    )
    .await;
    run_at(&admin, t0 + 71 * MIN, order("o-b", "m-b")).await;
    serve("o-b", "v-b", t0 + 72 * MIN).await;
    for _ in 0..2 {
        sync::sync_once(&d, &http).await.unwrap();
    }

    let city = &c.db;
    let balance = |m: &str| format!("SELECT balance AS c0 FROM accounts WHERE member_id = '{m}'");
    let signup = Rules::default().signup_bonus;
    assert_eq!(
        rows(city, &balance("m-b")).await,
        ["0"],
        "the gift was spent"
    );
    assert_eq!(rows(city, &balance("r-a")).await, ["-60"]);
    assert_eq!(
        rows(city, &balance("v-a")).await,
        [signup.to_string()],
        "the bonus of a vetted volunteer; the hour earned was given"
    );
    assert_eq!(
        rows(city, &balance("v-b")).await,
        [(signup + 60).to_string()]
    );
    let spend = rows(
        city,
        "SELECT t.kind AS c0, a.member_id AS c1, e.amount AS c2 FROM transfers t JOIN ledger_entries e ON e.transfer_id = t.id JOIN accounts a ON a.id = e.account_id WHERE t.order_id = 'o-b' ORDER BY e.amount",
    )
    .await;
    assert_eq!(
        spend,
        ["spend|m-b|-60", "spend|v-b|60"],
        "陈秀英 paid with the hours"
    );
    // The gift belongs to both communities' change logs: each center sees its side of it.
    let parts = rows(
        city,
        &format!("SELECT DISTINCT community_id AS c0 FROM change_log WHERE tbl = 'transfers' AND pk = '{gift}' ORDER BY community_id"),
    )
    .await;
    let mut both = vec![a_comm.clone(), b_comm.clone()];
    both.sort();
    assert_eq!(parts, both);
    assert!(timebank_core::read::verify(city, &|_, _| {})
        .await
        .unwrap()
        .ok());

    // The city's dashboard, from the server: every community, with their figures.
    let token = outbox::get_setting(&d, sync::K_TOKEN)
        .await
        .unwrap()
        .unwrap();
    let get = |token: Option<String>| {
        let req = reqwest::Client::new()
            .get(format!("{}/v1/city/dashboard", c.base))
            .header("x-timebank-protocol", sync::PROTOCOL.to_string());
        async move {
            match token {
                Some(t) => req.bearer_auth(t),
                None => req,
            }
            .send()
            .await
            .unwrap()
        }
    };
    let r = get(Some(token)).await;
    assert_eq!(r.status(), 200);
    let dash: Value = r.json().await.unwrap();
    assert_eq!(dash["communities"], 2, "{dash}");
    let f = &dash["figures"];
    assert_eq!(f["orders_completed_month"], 2, "{dash}");
    assert_eq!(f["volunteers_registered"], 2, "{dash}");
    let by: Vec<(String, i64, i64)> = f["by_community"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["label_zh"].as_str().unwrap().to_owned(),
                x["orders_completed"].as_i64().unwrap(),
                x["minutes_credited"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(by.contains(&("府苑新村".into(), 1, 60)), "{by:?}");
    assert!(by.contains(&("蒋村花园".into(), 1, 60)), "{by:?}");
    assert_eq!(get(None).await.status(), 401);
    // The device's client (what the desktop app shows staff) reads the same figures; a
    // volunteer signed in at that device is refused by the core.
    let staff = timebank_core::service::load_actor(&d, &admin)
        .await
        .unwrap();
    let figures = sync::http::city_dashboard(&d, &staff).await.unwrap();
    assert_eq!(figures.by_community.len(), 2);
    assert_eq!(figures.orders_completed_month, 2);
    let volunteer = timebank_core::service::load_actor(&d, "v-b").await.unwrap();
    let refused = sync::http::city_dashboard(&d, &volunteer)
        .await
        .unwrap_err();
    assert_eq!(refused.code, timebank_core::Code::Forbidden);
    let code = timebank_server::auth::issue_code(
        city,
        &c.boot.center_id,
        "volunteer",
        1,
        timebank_core::service::now_ms(),
    )
    .await
    .unwrap();
    let vol = Http::new(&c.base).enrol(&code, "志愿者手机").await.unwrap();
    assert_eq!(
        get(Some(vol.token)).await.status(),
        403,
        "a volunteer's device does not get the city's figures"
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_earned_in_one_community_are_spent_in_another_and_the_city_dashboard_covers_all_on_sqlite(
) {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_earned_in_one_community_are_spent_in_another_and_the_city_dashboard_covers_all_on_postgres(
) {
    run(true).await;
}

/// The server, and what the device's status showed of a pull each time a page was asked for;
/// with `page`, pages of at most that many changes (with 7, a boundary falls inside almost
/// every transaction's rows).
struct PeekAtPulls {
    http: Http,
    db: sea_orm::DatabaseConnection,
    page: Option<i64>,
    shown: std::sync::Mutex<Vec<Option<sync::PullProgress>>>,
}

impl PeekAtPulls {
    fn new(base: &str, db: &sea_orm::DatabaseConnection, page: Option<i64>) -> Through<Self> {
        Through(PeekAtPulls {
            http: Http::new(base),
            db: db.clone(),
            page,
            shown: Default::default(),
        })
    }
}

impl Intercept for PeekAtPulls {
    fn http(&self) -> &Http {
        &self.http
    }
    async fn pull(
        &self,
        token: &str,
        p: &str,
        after: i64,
        limit: i64,
    ) -> timebank_core::Result<sync::PullPage> {
        let pull = sync::status(&self.db).await?.pull;
        self.shown.lock().unwrap().push(pull);
        self.http
            .pull(token, p, after, self.page.unwrap_or(limit))
            .await
    }
}

/// A batch of registrations is logged parents first, so a new device applying small pages
/// (each checked for foreign keys at its end) never meets a row before the row it refers to.
async fn small_pages(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村", "蒋村花园"], Rules::default()).await
    else {
        return;
    };
    let a = c.device("a").await;
    let dev = outbox::device_id(&a).await.unwrap();
    let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
    for i in 0..40 {
        let comm = &c.boot.community_ids[i % 2];
        execute(
            &a,
            &ctx,
            register(
                &format!("v{i}"),
                &format!("志愿者{i}"),
                &format!("138{i:08}"),
                comm,
                true,
            ),
        )
        .await
        .unwrap();
    }
    sync::sync_once(&a, &Http::new(&c.base)).await.unwrap();
    let b = timebank_core::db::connect(&timebank_core::db::sqlite_url(&c.dir.path().join("b.db")))
        .await
        .unwrap();
    let code = timebank_server::auth::issue_code(
        &c.db,
        &c.boot.center_id,
        "center",
        1,
        timebank_core::service::now_ms(),
    )
    .await
    .unwrap();
    let e = Http::new(&c.base).enrol(&code, "b").await.unwrap();
    sync::store_enrolment(&b, &c.base, &e).await.unwrap();
    let t = PeekAtPulls::new(&c.base, &b, Some(7));
    let told = std::sync::Mutex::new(Vec::new());
    sync::sync_once_with_progress(&b, &t, &|p| told.lock().unwrap().push(p.clone()))
        .await
        .unwrap();
    // The progress of the long pull: told after every page, never going back, ending with
    // every change of the device's partitions received; the status showed the same figures
    // while the round ran, and shows none once it is over.
    let told = told.into_inner().unwrap();
    let mut heads = 0;
    for p in std::iter::once("*").chain(c.boot.community_ids.iter().map(String::as_str)) {
        heads += timebank_core::sql::scalar_i64(
            &c.db,
            "SELECT last_seq FROM change_heads WHERE community_id = ?",
            vec![p.into()],
        )
        .await
        .unwrap();
    }
    assert!(told.len() > 10, "{} progress reports", told.len());
    assert!(
        told.windows(2)
            .all(|w| w[1].received >= w[0].received && w[1].total >= w[0].total),
        "{told:?}"
    );
    assert!(told.iter().all(|p| p.received <= p.total), "{told:?}");
    let last = told.last().unwrap();
    assert_eq!((last.received, last.total), (heads, heads), "{last:?}");
    let shown = t.0.shown.into_inner().unwrap();
    assert!(shown[0].is_none(), "no progress before the first page");
    // (The next page is fetched while the device applies the one before it, so the status
    // seen at a fetch may be a page behind.)
    let shown: Vec<_> = shown.into_iter().flatten().collect();
    assert!(
        shown.len() + 3 >= told.len(),
        "{} of {} shown",
        shown.len(),
        told.len()
    );
    assert!(
        shown.iter().all(|s| told.contains(s)),
        "the status shows what was told: {shown:?}"
    );
    assert_eq!(sync::status(&b).await.unwrap().pull, None);
    let q = "SELECT m.id AS c0, r.role AS c1 FROM members m JOIN member_roles r ON r.member_id = m.id ORDER BY m.id, r.role";
    assert_eq!(rows(&b, q).await, rows(&c.db, q).await);
    assert_eq!(
        rows(&b, "SELECT COUNT(*) AS c0 FROM accounts").await,
        rows(&c.db, "SELECT COUNT(*) AS c0 FROM accounts").await
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_applies_small_pages_without_meeting_a_row_before_its_parent_on_sqlite() {
    small_pages(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_applies_small_pages_without_meeting_a_row_before_its_parent_on_postgres() {
    small_pages(true).await;
}

/// The city server runs the scheduled rules itself: a visit nobody confirmed within the
/// programme's time is confirmed and credited, and devices get the outcome by pulling.
async fn server_rules(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Rules::default()).await else {
        return;
    };
    let d = c.device("desk").await;
    let dev = outbox::device_id(&d).await.unwrap();
    let community = c.boot.community_ids[0].clone();
    let admin = c.boot.admin_id.clone();
    let long_ago = timebank_core::service::now_ms() - 3 * 24 * 60 * MIN;
    let run_at = |who: &str, at: i64, cmd: Command| {
        let (d, ctx) = (d.clone(), Ctx::new(who, &dev, at));
        async move { execute(&d, &ctx, cmd).await.unwrap() }
    };
    run_at(
        &admin,
        long_ago,
        register("r1", "王德明", "13700000001", &community, false),
    )
    .await;
    run_at(
        &admin,
        long_ago,
        register("v1", "马军", "13800000001", &community, true),
    )
    .await;
    run_at(
        &admin,
        long_ago,
        Command::SetVetting {
            member_id: "v1".into(),
            vetting: Vetting::Verified,
        },
    )
    .await;
    run_at(&admin, long_ago + MIN, order("o1", "r1")).await;
    serve_visit(&d, &dev, "v1", "o1", long_ago + 2 * MIN, 60, None).await;
    let http = Http::new(&c.base);
    sync::sync_once(&d, &http).await.unwrap();
    let status = "SELECT status AS c0 FROM orders WHERE id = 'o1'";
    assert_eq!(rows(&c.db, status).await, ["awaiting_confirmation"]);
    let now = timebank_core::service::now_ms();
    let done = timebank_server::run_rules(&c.db, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done["auto_confirmed"], 1, "{done}");
    assert_eq!(rows(&c.db, status).await, ["completed"]);
    // Run again: nothing left to do, nothing credited twice.
    let again = timebank_server::run_rules(&c.db, now + MIN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again["auto_confirmed"], 0, "{again}");
    let credited = "SELECT CAST(COALESCE(SUM(e.amount), 0) AS BIGINT) AS c0 FROM ledger_entries e JOIN accounts a ON a.id = e.account_id JOIN transfers t ON t.id = e.transfer_id WHERE a.member_id = 'v1' AND t.order_id = 'o1'";
    assert_eq!(rows(&c.db, credited).await, ["60"]);
    sync::sync_once(&d, &http).await.unwrap();
    assert_eq!(
        rows(&d, status).await,
        ["completed"],
        "the device pulled it"
    );
    assert_eq!(rows(&d, credited).await, ["60"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_server_runs_the_scheduled_rules_and_devices_pull_the_outcome_on_sqlite() {
    server_rules(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_server_runs_the_scheduled_rules_and_devices_pull_the_outcome_on_postgres() {
    server_rules(true).await;
}

/// A device enrolled by an earlier version has the `cc_` capture triggers (which also queued
/// the rows it applied from the server) or the `cq_` ones (which kept no before-images). Its
/// next round replaces them by the `cj_` triggers, which leave pulled rows alone and journal
/// the device's own writes with what each row was before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_of_an_earlier_version_gets_the_new_capture_triggers_and_still_journals_its_writes(
) {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("old").await;
    let triggers = |prefix: &'static str| {
        let d = d.clone();
        async move {
            timebank_core::sql::scalar_i64(
                &d,
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND substr(name, 1, 3) = ?",
                vec![prefix.into()],
            )
            .await
            .unwrap()
        }
    };
    let all = (sync::TABLES.len() * 3) as i64;
    let kinds = || async {
        (
            triggers("cj_").await,
            triggers("cq_").await,
            triggers("cc_").await,
        )
    };
    assert_eq!(kinds().await, (all, 0, 0));
    // Make it look like the earlier versions: the old, unconditional trigger on members, and
    // one without before-images.
    for o in ["insert", "update", "delete"] {
        sea_orm::ConnectionTrait::execute_unprepared(&d, &format!("DROP TRIGGER cj_members_{o}"))
            .await
            .unwrap();
    }
    sea_orm::ConnectionTrait::execute_unprepared(
        &d,
        "CREATE TRIGGER cq_members_update AFTER UPDATE ON members BEGIN \
         INSERT INTO change_queue (tbl, pk, op) VALUES ('members', NEW.id, 'upsert'); END",
    )
    .await
    .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &d,
        "CREATE TRIGGER cc_members_insert AFTER INSERT ON members BEGIN \
         INSERT INTO change_queue (tbl, pk, op) VALUES ('members', NEW.id, 'upsert'); END",
    )
    .await
    .unwrap();
    let (ctx, comm) = register_one(&c, &d).await;
    sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!(kinds().await, (all, 0, 0));
    // A write after the upgrade is journaled, pushed and on the server.
    execute(
        &d,
        &ctx,
        register("r-2", "钱秀梅", "13711112222", &comm, false),
    )
    .await
    .unwrap();
    let queued = rows(
        &d,
        "SELECT DISTINCT tbl AS c0 FROM change_queue WHERE mutation_id IS NOT NULL ORDER BY tbl",
    )
    .await;
    assert!(queued.contains(&"members".to_owned()), "{queued:?}");
    // An edit is journaled with the row as it was: the phone before the edit.
    let edit = Command::UpdateMember(UpdateMember {
        member_id: "r-2".into(),
        name: None,
        phone: Some("13711112229".into()),
        address: None,
        seen: None,
    });
    execute(&d, &ctx, edit).await.unwrap();
    let images = "SELECT q.before_row ->> 'phone' AS c0 FROM change_queue q WHERE q.tbl = 'members' AND q.pk = 'r-2' ORDER BY q.rowid";
    assert_eq!(
        rows(&d, images).await,
        ["", "13711112222"],
        "created, then edited"
    );
    sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    let q = "SELECT id AS c0 FROM members WHERE id IN ('r-1', 'r-2') ORDER BY id";
    assert_eq!(rows(&c.db, q).await, vec!["r-1", "r-2"]);
    // Rows applied from the server leave nothing in the journal.
    assert_eq!(
        rows(&d, "SELECT COUNT(*) AS c0 FROM change_queue").await,
        vec!["0"]
    );
    c.stop().await;
}

/// 周桂兰 (`r-1`) registered by the city's administrator on device `d`, waiting in its outbox;
/// the administrator's context there and the city's first community.
async fn register_one(c: &City, d: &sea_orm::DatabaseConnection) -> (Ctx, String) {
    let dev = outbox::device_id(d).await.unwrap();
    let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
    let comm = c.boot.community_ids[0].clone();
    execute(
        d,
        &ctx,
        register("r-1", "周桂兰", "13711112221", &comm, false),
    )
    .await
    .unwrap();
    (ctx, comm)
}

/// A server (or a proxy) that answers a push with sequences the device did not send.
struct WrongAnswers(Http);

impl Intercept for WrongAnswers {
    fn http(&self) -> &Http {
        &self.0
    }
    async fn push(
        &self,
        token: &str,
        m: &[sync::Mutation],
    ) -> timebank_core::Result<sync::PushResponse> {
        let mut r = self.0.push(token, m).await?;
        for a in &mut r.results {
            a.seq += 1000;
        }
        Ok(r)
    }
}

/// Answers that match nothing the device sent end the round with an error (instead of sending
/// the same batch for ever); the outbox keeps the mutation, and a sound round settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_match_nothing_sent_end_the_round_and_the_outbox_keeps_the_mutation() {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("d").await;
    register_one(&c, &d).await;
    let wrong = Through(WrongAnswers(Http::new(&c.base)));
    let round = sync::sync_once(&d, &wrong);
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), round)
        .await
        .expect("the round ends");
    assert!(r.is_err(), "{r:?}");
    assert_eq!(sync::status(&d).await.unwrap().pending, 1);
    let r = sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!(r.pushed, 1, "the stored answer settles it: {r:?}");
    assert_eq!(sync::status(&d).await.unwrap().pending, 0);
    let q = "SELECT id AS c0 FROM members WHERE id = 'r-1'";
    assert_eq!(rows(&c.db, q).await, ["r-1"]);
    c.stop().await;
}

/// A round records how it went for the status the app shows, in one commit at its end: after
/// a round that could not reach the server the device is offline, says why in plain words (in
/// Chinese and English) and keeps its waiting change; the progress of a pull left behind by a
/// round that was cut off is forgotten as the next round starts (it would show a pull that is
/// not under way); after a sound round the device is online, with the time of its success and
/// no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_records_offline_with_the_reason_then_online_and_forgets_a_cut_pulls_progress() {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("d").await;
    let enrolled = sync::status(&d).await.unwrap();
    assert!(enrolled.online, "{enrolled:?}");
    register_one(&c, &d).await;

    // Nothing listens on port 9 of the loopback.
    assert!(sync::sync_once(&d, &Http::new("http://127.0.0.1:9"))
        .await
        .is_err());
    let s = sync::status(&d).await.unwrap();
    assert!(!s.online, "{s:?}");
    assert_eq!(s.pending, 1);
    assert_eq!(s.last_success_ms, enrolled.last_success_ms);
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or("")
            .contains("连不上城市服务器"),
        "{s:?}"
    );
    assert!(
        s.last_error_en
            .as_deref()
            .unwrap_or("")
            .contains("cannot be reached"),
        "{s:?}"
    );

    // A round cut off in the middle of a long pull left its progress behind.
    outbox::set_setting(
        &d,
        sync::K_PULL_PROGRESS,
        r#"{"received":5000,"total":20000,"partition":"*"}"#,
    )
    .await
    .unwrap();
    assert!(sync::status(&d).await.unwrap().pull.is_some());

    let peek = PeekAtPulls::new(&c.base, &d, None);
    let r = sync::sync_once(&d, &peek).await.unwrap();
    assert_eq!(r.pushed, 1, "{r:?}");
    let shown = peek.shown.lock().unwrap().clone();
    assert!(
        !shown.is_empty() && shown.iter().all(Option::is_none),
        "{shown:?}"
    );
    let s = sync::status(&d).await.unwrap();
    assert!(s.online, "{s:?}");
    assert_eq!(s.pending, 0);
    assert!(
        s.last_success_ms.unwrap_or(0) >= enrolled.last_success_ms.unwrap_or(i64::MAX),
        "{s:?}"
    );
    assert_eq!((s.last_error, s.last_error_en, s.pull), (None, None, None));
    c.stop().await;
}

/// The planner's statistics of a device's tables (`sqlite_stat1`): (table, rows it counts).
async fn device_statistics(d: &sea_orm::DatabaseConnection) -> Vec<(String, i64)> {
    let kept = rows(
        d,
        "SELECT name AS c0 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'",
    )
    .await;
    if kept.is_empty() {
        return Vec::new();
    }
    timebank_core::sql::all(
        d,
        "SELECT tbl, stat FROM sqlite_stat1 ORDER BY tbl, idx",
        vec![],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let stat: String = r.try_get("", "stat").unwrap();
        (
            r.try_get("", "tbl").unwrap(),
            stat.split(' ').next().unwrap().parse().unwrap(),
        )
    })
    .collect()
}

/// A device gathers its query planner's statistics after a round that pulled rows, as the
/// city server does every minute: a new device's first pull takes its tables from nothing to
/// the whole of its communities, and SQLite's planner would otherwise go on guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gathers_its_planners_statistics_after_a_round_that_pulled_rows() {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let a = c.device("a").await;
    let dev = outbox::device_id(&a).await.unwrap();
    let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
    let comm = c.boot.community_ids[0].clone();
    for i in 0..400 {
        let cmd = register(
            &format!("m-{i}"),
            "吴阿婆",
            &format!("1380000{i:04}"),
            &comm,
            false,
        );
        execute(&a, &ctx, cmd).await.unwrap();
    }
    sync::sync_once(&a, &Http::new(&c.base)).await.unwrap();
    // A new device: its first round pulls the 400 members.
    let b = c.device("b").await;
    let members: Vec<i64> = device_statistics(&b)
        .await
        .into_iter()
        .filter(|(t, _)| t == "members")
        .map(|(_, n)| n)
        .collect();
    assert!(
        !members.is_empty() && members.iter().all(|n| *n >= 400),
        "the new device's statistics count its members: {members:?}"
    );
    c.stop().await;
}

/// A city of two communities, a second center serving the second one alone, and two synced
/// devices: `both` (of the first center, serving both communities), on which a volunteer of
/// each community registered (each with a sign-up bonus from the issuing account), and
/// `second` (of the second center).
/// (None on PostgreSQL when no PostgreSQL server is reachable.)
async fn two_centers(
    postgres: bool,
) -> Option<(
    City,
    sea_orm::DatabaseConnection,
    sea_orm::DatabaseConnection,
    Http,
)> {
    let c = City::start(postgres, &["府苑新村", "蒋村花园"], Rules::default()).await?;
    let (ca, cb) = (
        c.boot.community_ids[0].clone(),
        c.boot.community_ids[1].clone(),
    );
    // A second center, serving the second community only.
    timebank_core::sql::exec(
        &c.db,
        "INSERT INTO centers (id, name_zh, name_en, subdistrict_id) VALUES ('c2', '蒋村花园服务站', 'Station', ?)",
        vec![c.boot.subdistrict_id.clone().into()],
    )
    .await
    .unwrap();
    timebank_core::sql::exec(
        &c.db,
        "INSERT INTO center_communities (center_id, community_id) VALUES ('c2', ?)",
        vec![cb.clone().into()],
    )
    .await
    .unwrap();
    let both = c.device("both").await;
    let dev = outbox::device_id(&both).await.unwrap();
    let ctx = Ctx::new(&c.boot.admin_id, &dev, timebank_core::service::now_ms());
    for (id, phone, community) in [("v-a", "13800000101", &ca), ("v-b", "13800000102", &cb)] {
        execute(&both, &ctx, register(id, "志愿者", phone, community, true))
            .await
            .unwrap();
    }
    let http = Http::new(&c.base);
    sync::sync_once(&both, &http).await.unwrap();
    let second = timebank_core::db::connect(&timebank_core::db::sqlite_url(
        &c.dir.path().join("second.db"),
    ))
    .await
    .unwrap();
    let code = timebank_server::auth::issue_code(
        &c.db,
        "c2",
        "center",
        1,
        timebank_core::service::now_ms(),
    )
    .await
    .unwrap();
    sync::http::enrol(&second, &c.base, &code, "second", &|_| {})
        .await
        .unwrap();
    sync::sync_once(&second, &http).await.unwrap();
    Some((c, both, second, http))
}

/// The hours of a community reach the devices of that community alone: a sign-up bonus (or a
/// service credit) is paid from the programme's issuing account, which belongs to no
/// community, and its transfer and both of its entries go to the volunteer's community, not
/// to every device of the city. A device of a center that serves another community holds none
/// of them, and every transfer it holds is whole (its entries sum to zero); a device of both
/// communities holds them all and its ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_from_the_issuing_account_reach_only_the_devices_of_the_volunteers_community() {
    let (c, both, second, _) = two_centers(false).await.unwrap();
    // The transfers of each volunteer's account, on the server.
    let of = |member: &str| {
        format!("SELECT DISTINCT e.transfer_id AS c0 FROM ledger_entries e JOIN accounts a ON a.id = e.account_id WHERE a.member_id = '{member}' ORDER BY c0")
    };
    let (bonus_a, bonus_b) = (rows(&c.db, &of("v-a")).await, rows(&c.db, &of("v-b")).await);
    assert!(
        !bonus_a.is_empty() && !bonus_b.is_empty(),
        "sign-up bonuses were paid"
    );
    let held = rows(&second, "SELECT id AS c0 FROM transfers ORDER BY id").await;
    assert_eq!(
        held, bonus_b,
        "the second center's device holds the second community's transfers and no other"
    );
    let unbalanced =
        "SELECT transfer_id AS c0 FROM ledger_entries GROUP BY transfer_id HAVING SUM(amount) <> 0";
    assert_eq!(rows(&second, unbalanced).await, Vec::<String>::new());
    // The device of both communities holds both bonuses, whole, and its ledger verifies.
    let all = rows(&both, "SELECT id AS c0 FROM transfers ORDER BY id").await;
    for t in bonus_a.iter().chain(&bonus_b) {
        assert!(all.contains(t), "{t} on the device of both communities");
    }
    let report = timebank_core::read::verify(&both, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{report:?}");
    c.stop().await;
}

/// A device of a center that serves some of the city's communities holds the issuing
/// account's row (its balance is the city's) but only its own communities' entries on it, and
/// only its own side of a gift from another community: its ledger still verifies, names the
/// issuing account and the gift as held in part, and its backup can be restored (a backup
/// whose ledger does not verify is refused). Every other account is still
/// checked there, and on a device of every community the issuing account is checked too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_of_some_communities_verifies_its_ledger_and_names_what_it_holds_in_part() {
    use timebank_core::read::verify;
    let (c, both, second, _) = two_centers(false).await.unwrap();
    let issuing = rows(
        &c.db,
        "SELECT id AS c0 FROM accounts WHERE kind = 'issuing'",
    )
    .await;
    assert_eq!(issuing.len(), 1, "one programme, one issuing account");
    let city_balance = timebank_core::sql::scalar_i64(
        &c.db,
        "SELECT balance FROM accounts WHERE kind = 'issuing'",
        vec![],
    )
    .await
    .unwrap();
    let bonus_b = timebank_core::sql::scalar_i64(
        &c.db,
        "SELECT balance FROM accounts WHERE member_id = 'v-b'",
        vec![],
    )
    .await
    .unwrap();
    assert!(bonus_b > 0, "the second community's volunteer got a bonus");
    // The first community's volunteer gives 10 minutes to her son in the second: a transfer
    // between the two communities, whose second-community side alone is on the second desk.
    let dev = outbox::device_id(&both).await.unwrap();
    let now = timebank_core::service::now_ms();
    execute(
        &both,
        &Ctx::new(&c.boot.admin_id, &dev, now),
        Command::LinkFamily {
            member_id: "v-a".into(),
            relative_id: "v-b".into(),
            relation: Relation::Child,
        },
    )
    .await
    .unwrap();
    let gift = new_id();
    execute(
        &both,
        &Ctx::new("v-a", &dev, now),
        Command::Gift {
            transfer_id: gift.clone(),
            to_member_id: "v-b".into(),
            minutes: 10,
            note: "给儿子".into(),
        },
    )
    .await
    .unwrap();
    let http = Http::new(&c.base);
    sync::sync_once(&both, &http).await.unwrap();
    sync::sync_once(&second, &http).await.unwrap();
    let bonus_b = bonus_b + 10;

    let report = verify(&second, &|_, _| {}).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.some_communities && report.unbalanced_transfers.is_empty());
    assert_eq!(
        report.transfers_held_in_part,
        [(gift.clone(), 10)],
        "the gift, with the second community's side only"
    );
    assert_eq!(report.held_in_part.len(), 1, "{report:?}");
    let part = &report.held_in_part[0];
    assert_eq!(part.account_id, issuing[0]);
    assert_eq!(
        (part.stored_balance, part.sum_of_entries),
        (city_balance, -(bonus_b - 10)),
        "the city's balance, and the second community's share of its entries"
    );

    // Its backup passes the check a restore makes.
    let file = c.dir.path().join("second-backup.db");
    timebank_core::backup::backup(&second, &file).await.unwrap();
    let checked = timebank_core::backup::check_backup(&file).await.unwrap();
    assert_eq!(checked.held_in_part, report.held_in_part);
    assert_eq!(
        checked.transfers_held_in_part,
        report.transfers_held_in_part
    );

    // A member's account that does not add up is still found on that device…
    timebank_core::sql::exec(
        &second,
        "UPDATE accounts SET balance = balance + 1 WHERE member_id = 'v-b'",
        vec![],
    )
    .await
    .unwrap();
    let report = verify(&second, &|_, _| {}).await.unwrap();
    assert!(!report.ok());
    assert_eq!(report.mismatched_accounts.len(), 1, "{report:?}");
    assert_eq!(report.mismatched_accounts[0].stored_balance, bonus_b + 1);

    // …and on the device of every community the issuing account is checked like any other.
    let report = verify(&both, &|_, _| {}).await.unwrap();
    assert!(
        report.ok()
            && !report.some_communities
            && report.held_in_part.is_empty()
            && report.transfers_held_in_part.is_empty(),
        "{report:?}"
    );
    timebank_core::sql::exec(
        &both,
        "UPDATE accounts SET balance = balance - 1 WHERE kind = 'issuing'",
        vec![],
    )
    .await
    .unwrap();
    let report = verify(&both, &|_, _| {}).await.unwrap();
    assert!(!report.ok(), "{report:?}");
    assert_eq!(report.mismatched_accounts[0].account_id, issuing[0]);
    assert!(report.held_in_part.is_empty());
    c.stop().await;
}

/// A desk of one community pulls the rows of its community that name members of another: a
/// family link and a gift from a son living elsewhere, an order he posted for his mother. His
/// member row comes with them (before, the missing member failed every pull of that desk from
/// then on, on its foreign keys), and his later changes follow it there.
async fn rows_naming_members_of_another_community(postgres: bool) {
    let Some((c, both, second, http)) = two_centers(postgres).await else {
        return;
    };
    let dev = outbox::device_id(&both).await.unwrap();
    let now = timebank_core::service::now_ms();
    let admin = Ctx::new(&c.boot.admin_id, &dev, now);
    let son = Ctx::new("v-a", &dev, now);
    for (ctx, cmd) in [
        (
            &admin,
            Command::SetPin {
                member_id: "v-a".into(),
                pin_hash: timebank_core::service::members::hash_pin("2468").unwrap(),
            },
        ),
        (
            &son,
            Command::UpdateMember(UpdateMember {
                member_id: "v-a".into(),
                address: Some("府苑新村3幢201".into()),
                ..Default::default()
            }),
        ),
        (
            &admin,
            Command::LinkFamily {
                member_id: "v-b".into(),
                relative_id: "v-a".into(),
                relation: Relation::Child,
            },
        ),
        (
            &son,
            Command::Gift {
                transfer_id: new_id(),
                to_member_id: "v-b".into(),
                minutes: 10,
                note: "给妈妈".into(),
            },
        ),
        (&son, order("o-mother", "v-b")),
        // A relative registered and linked in one go: created in the same pushed batch as
        // the row that names him.
        (
            &admin,
            register(
                "v-c",
                "新亲属",
                "13800000103",
                &c.boot.community_ids[0],
                false,
            ),
        ),
        (
            &admin,
            Command::LinkFamily {
                member_id: "v-b".into(),
                relative_id: "v-c".into(),
                relation: Relation::Spouse,
            },
        ),
    ] {
        execute(&both, ctx, cmd).await.unwrap();
    }
    sync::sync_once(&both, &http).await.unwrap();
    let report = sync::sync_once(&second, &http).await.unwrap();
    assert!(report.pulled > 0, "{report:?}");
    let on_second = |q: &'static str| {
        let second = second.clone();
        async move { rows(&second, q).await }
    };
    assert_eq!(
        on_second("SELECT posted_by AS c0 FROM orders WHERE id = 'o-mother'").await,
        ["v-a"]
    );
    assert_eq!(
        on_second(
            "SELECT relative_id AS c0 FROM family_links WHERE member_id = 'v-b' ORDER BY relative_id"
        )
        .await,
        ["v-a", "v-c"]
    );
    assert_eq!(
        on_second("SELECT name AS c0 FROM members WHERE id = 'v-a'").await,
        ["志愿者"]
    );
    assert_eq!(
        on_second("SELECT name AS c0, COALESCE(address, '-') AS c1 FROM members WHERE id = 'v-c'")
            .await,
        ["新亲属|-"]
    );
    // His PIN's hash and his address stay with his own community's devices.
    let private = "SELECT COALESCE(pin_hash, '-') AS c0, COALESCE(address, '-') AS c1 FROM members WHERE id = 'v-a'";
    assert_eq!(on_second(private).await, ["-|-"]);
    let token = outbox::get_setting(&second, sync::K_TOKEN)
        .await
        .unwrap()
        .unwrap();
    let asked = sync::Transport::rows(&http, &token, &[("members".into(), "v-a".into())])
        .await
        .unwrap();
    let row = asked[0].row.as_ref().expect("his row");
    assert_eq!(row["name"], "志愿者");
    // Given as null, not left out: a local edit of them that the server refused is undone.
    for col in ["pin_hash", "address"] {
        assert_eq!(row.get(col), Some(&Value::Null), "{row}");
    }
    // His account is not the second desk's: only his side of the gift stays with his community.
    assert!(
        on_second("SELECT id AS c0 FROM accounts WHERE member_id = 'v-a'")
            .await
            .is_empty()
    );
    assert!(timebank_core::read::verify(&second, &|_, _| {})
        .await
        .unwrap()
        .ok());

    // He changes his name: the second desk gets it too.
    execute(
        &both,
        &son,
        Command::UpdateMember(UpdateMember {
            member_id: "v-a".into(),
            name: Some("李伟".into()),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    sync::sync_once(&both, &http).await.unwrap();
    sync::sync_once(&second, &http).await.unwrap();
    assert_eq!(
        on_second("SELECT name AS c0 FROM members WHERE id = 'v-a'").await,
        ["李伟"]
    );
    assert_eq!(on_second(private).await, ["-|-"]);
    // The desk of both communities pulled his copies too, and kept what his home gave it.
    let kept = rows(&both, private).await;
    assert_eq!(kept, rows(&c.db, private).await);
    assert!(
        kept[0].starts_with("$argon2") && kept[0].ends_with("|府苑新村3幢201"),
        "{kept:?}"
    );
    // The server logged his row in the second community once, then his change.
    let cb = c.boot.community_ids[1].clone();
    let logged = rows(
        &c.db,
        &format!("SELECT op AS c0 FROM change_log WHERE community_id = '{cb}' AND tbl = 'members' AND pk = 'v-a' ORDER BY seq"),
    )
    .await;
    assert_eq!(logged, ["upsert", "upsert"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_of_one_community_pulls_rows_naming_members_of_another_on_sqlite() {
    rows_naming_members_of_another_community(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_of_one_community_pulls_rows_naming_members_of_another_on_postgres() {
    rows_naming_members_of_another_community(true).await;
}

/// Whether PostgreSQL holds a database of this name.
/// A volunteer's laptop gets no PIN hash of staff or administrators (no one acts as staff
/// there), neither in its first pull, nor later, nor in the rows answer; the volunteer's own
/// comes, and a center's workstation gets them all. Nor does it get their inbox messages (a
/// safeguarding report filed, with its category), in pages or in the rows answer; the
/// volunteer's own come.
async fn staff_pins(postgres: bool) {
    let Some(c) = City::start(postgres, &["府苑新村"], Rules::default()).await else {
        return;
    };
    let comm = c.boot.community_ids[0].clone();
    let desk = c.device("desk").await;
    let http = Http::new(&c.base);
    let dev = outbox::device_id(&desk).await.unwrap();
    let admin = c.boot.admin_id.clone();
    let ctx = Ctx::new(&admin, &dev, timebank_core::service::now_ms());
    let Command::RegisterMember(mut staff) = register("s-1", "李红", "13711113332", &comm, false)
    else {
        unreachable!("register makes a RegisterMember")
    };
    staff.roles = vec![timebank_core::domain::Role::Staff];
    staff.center_id = Some(c.boot.center_id.clone());
    let pin = |who: &str| Command::SetPin {
        member_id: who.into(),
        pin_hash: timebank_core::service::members::hash_pin("2468").unwrap(),
    };
    for cmd in [
        register("v-1", "马军", "13711113331", &comm, true),
        Command::RegisterMember(staff),
        pin(&admin),
        pin("v-1"),
    ] {
        execute(&desk, &ctx, cmd).await.unwrap();
    }
    sync::sync_once(&desk, &http).await.unwrap();
    let laptop = c.device_as("laptop", "volunteer").await;
    // A PIN set after the laptop's first pull; a safeguarding report about the volunteer,
    // which the staff hear of; the volunteer's vetting, which they hear of.
    execute(&desk, &ctx, pin("s-1")).await.unwrap();
    let vetting = Command::SetVetting {
        member_id: "v-1".into(),
        vetting: Vetting::Verified,
    };
    execute(&desk, &ctx, vetting).await.unwrap();
    let report = Command::FileSafeguarding(FileSafeguarding {
        report_id: "sg-1".into(),
        subject_member_id: Some("v-1".into()),
        order_id: None,
        category: "neglect".into(),
        details: "三天没见他出门".into(),
    });
    execute(&desk, &ctx, report).await.unwrap();
    sync::sync_once(&desk, &http).await.unwrap();
    sync::sync_once(&laptop, &http).await.unwrap();
    let inbox = "SELECT member_id || ':' || kind AS c0 FROM inbox_messages \
                 WHERE kind = 'safeguarding_filed' OR member_id = 'v-1' ORDER BY 1";
    let mut staff_heard = vec![
        format!("{admin}:safeguarding_filed"),
        "s-1:safeguarding_filed".into(),
        "v-1:vetting_changed".into(),
    ];
    staff_heard.sort();
    assert_eq!(
        rows(&desk, inbox).await,
        staff_heard,
        "the desk holds the staff's messages"
    );
    assert_eq!(
        rows(&laptop, inbox).await,
        ["v-1:vetting_changed"],
        "the laptop holds no message of staff"
    );
    let staff_message = rows(
        &desk,
        "SELECT id AS c0 FROM inbox_messages WHERE member_id = 's-1'",
    )
    .await
    .remove(0);
    let pins = |d: sea_orm::DatabaseConnection| {
        let q = format!(
            "SELECT id AS c0, CASE WHEN pin_hash IS NULL THEN 'none' ELSE 'pin' END AS c1 \
             FROM members WHERE id IN ('{admin}', 's-1', 'v-1') ORDER BY id"
        );
        async move { rows(&d, &q).await }
    };
    let admin_row = |pin: &str| format!("{admin}|{pin}");
    let mut on_desk = vec![admin_row("pin"), "s-1|pin".into(), "v-1|pin".into()];
    on_desk.sort();
    let mut on_laptop = vec![admin_row("none"), "s-1|none".into(), "v-1|pin".into()];
    on_laptop.sort();
    assert_eq!(pins(desk.clone()).await, on_desk);
    assert_eq!(pins(laptop.clone()).await, on_laptop);
    let token = outbox::get_setting(&laptop, sync::K_TOKEN)
        .await
        .unwrap()
        .unwrap();
    let keys = [
        ("members".to_owned(), admin.clone()),
        ("members".to_owned(), "v-1".to_owned()),
        ("inbox_messages".to_owned(), staff_message.clone()),
    ];
    let answer = sync::Transport::rows(&http, &token, &keys).await.unwrap();
    assert_eq!(
        answer.len(),
        2,
        "no staff message in the rows answer: {answer:?}"
    );
    let desk_token = outbox::get_setting(&desk, sync::K_TOKEN)
        .await
        .unwrap()
        .unwrap();
    let on_desk = sync::Transport::rows(&http, &desk_token, &keys)
        .await
        .unwrap();
    assert_eq!(
        on_desk.len(),
        3,
        "the desk is answered the staff message too"
    );
    let pin_of = |i: usize| answer[i].row.as_ref().unwrap()["pin_hash"].is_null();
    assert!(
        pin_of(0),
        "the administrator's PIN hash is not in the rows answer"
    );
    assert!(!pin_of(1), "the volunteer's own PIN hash is");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteers_laptop_gets_no_pin_hash_of_staff_on_sqlite() {
    staff_pins(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteers_laptop_gets_no_pin_hash_of_staff_on_postgres() {
    staff_pins(true).await;
}

async fn pg_database_exists(name: &str) -> bool {
    let admin = timebank_core::db::open(&common::pg_admin()).await.unwrap();
    let n = rows(
        &admin,
        &format!("SELECT COUNT(*) AS c0 FROM pg_database WHERE datname = '{name}'"),
    )
    .await;
    admin.close().await.ok();
    n == ["1"]
}

/// A test that fails before it stops its city (it panics) still leaves no PostgreSQL
/// database behind: the harness drops it as the city goes out of scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_whose_test_panics_before_stop_still_drops_its_postgresql_database() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let failing = tokio::spawn(async move {
        let Some(c) = City::start(true, &["府苑新村"], Rules::default()).await else {
            let _ = tx.send(None);
            return;
        };
        let name = c.pg_database().unwrap().to_owned();
        let existed = pg_database_exists(&name).await;
        let _ = tx.send(Some((name, existed)));
        panic!("a test failing before its city's stop (this panic is expected)");
    });
    let ended = failing.await;
    let Some((name, existed)) = rx.await.unwrap() else {
        return; // TIMEBANK_SKIP_PG=1: no city, no panic
    };
    assert!(ended.unwrap_err().is_panic());
    assert!(
        existed,
        "the city's database {name} was there while its test ran"
    );
    assert!(
        !pg_database_exists(&name).await,
        "the city's database {name} is left on PostgreSQL after its test panicked"
    );
}

/// Changes a center made offline with an earlier version of the app, two schema versions behind
/// this one, still waiting when the update is installed: opening the updated app re-stamps
/// them, and the city server applies them instead of refusing them as "update the app". A
/// waiting change this version cannot read keeps its stamp, and the server's refusal says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_waiting_from_an_app_two_versions_back_go_through_once_the_app_is_updated() {
    use timebank_migrations::SCHEMA_VERSION;
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("d").await;
    let (ctx, comm) = register_one(&c, &d).await;
    let ctx2 = Ctx::new(
        &ctx.actor_id,
        &ctx.device_id,
        timebank_core::service::now_ms(),
    );
    execute(
        &d,
        &ctx2,
        register("r-2", "王秀英", "13711112222", &comm, false),
    )
    .await
    .unwrap();
    // As the earlier version left them: both stamped two versions back, the second a command
    // this version no longer knows.
    timebank_core::sql::exec(
        &d,
        "UPDATE outbox SET schema_version = ?",
        vec![(SCHEMA_VERSION - 2).into()],
    )
    .await
    .unwrap();
    timebank_core::sql::exec(
        &d,
        "UPDATE outbox SET name = 'retired_command' WHERE seq = 2",
        vec![],
    )
    .await
    .unwrap();
    d.close().await.unwrap();

    // The updated app opens the device's database.
    let d = timebank_core::db::connect(&timebank_core::db::sqlite_url(&c.dir.path().join("d.db")))
        .await
        .unwrap();
    let stamps = "SELECT seq AS c0, schema_version AS c1 FROM outbox ORDER BY seq";
    assert_eq!(
        rows(&d, stamps).await,
        [
            format!("1|{SCHEMA_VERSION}"),
            format!("2|{}", SCHEMA_VERSION - 2)
        ]
    );
    let r = sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (1, 1), "{r:?}");
    let q = "SELECT id AS c0 FROM members WHERE id IN ('r-1', 'r-2')";
    assert_eq!(rows(&c.db, q).await, ["r-1"]);
    assert_eq!(rows(&d, q).await, ["r-1"]);
    let why = r.rejections[0].to_string();
    assert!(why.contains("schema_version"), "{why}");
    assert_eq!(sync::status(&d).await.unwrap().pending, 0);
    c.stop().await;
}

/// Registers `id` (a resident of `comm`) as `ctx`'s actor on `d`, now.
async fn register_now(d: &sea_orm::DatabaseConnection, ctx: &Ctx, id: &str, comm: &str, n: u32) {
    let ctx = Ctx::new(
        &ctx.actor_id,
        &ctx.device_id,
        timebank_core::service::now_ms(),
    );
    execute(
        d,
        &ctx,
        register(id, "王秀英", &format!("137111{n:05}"), comm, false),
    )
    .await
    .unwrap();
}

/// A center restores its workstation from a backup taken before changes the city has since
/// taken: the outbox numbers its next changes again from where the backup left off, sequences
/// the city has answered for those other changes. The city applies nothing under a sequence it
/// knows for another mutation; the device numbers its waiting changes after the city's, and
/// they go through. None is lost (each was marked with the other's answer, and dropped when
/// the pull did not bring its rows), and the changes made after the backup come back from the
/// city.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_restored_from_a_backup_loses_none_of_the_changes_it_makes_after() {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("d").await;
    let (ctx, comm) = register_one(&c, &d).await;
    sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    let file = c.dir.path().join("d-backup.db");
    timebank_core::backup::backup(&d, &file).await.unwrap();
    register_now(&d, &ctx, "r-2", &comm, 2).await;
    register_now(&d, &ctx, "r-3", &comm, 3).await;
    sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    d.close().await.unwrap();

    let path = c.dir.path().join("d.db");
    timebank_core::backup::restore(&file, &path).await.unwrap();
    let d = timebank_core::db::connect(&timebank_core::db::sqlite_url(&path))
        .await
        .unwrap();
    for (n, id) in [(4, "r-4"), (5, "r-5"), (6, "r-6")] {
        register_now(&d, &ctx, id, &comm, n).await;
    }
    let seqs = "SELECT seq AS c0 FROM outbox WHERE status = 'pending' ORDER BY seq";
    assert_eq!(rows(&d, seqs).await, ["2", "3", "4"], "numbered again");
    let r = sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!((r.pushed, r.rejected), (3, 0), "{r:?}");
    let q = "SELECT id AS c0 FROM members WHERE id LIKE 'r-%' ORDER BY id";
    let all = ["r-1", "r-2", "r-3", "r-4", "r-5", "r-6"];
    assert_eq!(rows(&c.db, q).await, all);
    assert_eq!(rows(&d, q).await, all);
    assert_eq!(sync::status(&d).await.unwrap().pending, 0);

    // The next change follows the renumbered ones.
    register_now(&d, &ctx, "r-7", &comm, 7).await;
    assert_eq!(rows(&d, seqs).await, ["7"]);
    let r = sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!(r.pushed, 1, "{r:?}");
    assert_eq!(
        rows(&c.db, "SELECT id AS c0 FROM members WHERE id = 'r-7'").await,
        ["r-7"]
    );
    c.stop().await;
}

/// The city's database goes back in time (restored from a backup, or a failover that lost
/// commits): it expects sequences this device sent, and forgot, long ago, and its change log
/// ends before the device's cursor. The device numbers its waiting change to follow the city's
/// record and pulls its community again from the start, so what others write reaches it, instead
/// of every round failing and the log's new entries up to the old cursor never arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_goes_on_syncing_after_the_city_database_went_back_in_time() {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("d").await;
    let other = c.device("other").await;
    let (ctx, comm) = register_one(&c, &d).await;
    sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    // As if the city had taken sequences 2 to 9 from the device and a thousand more entries
    // in the log, and lost them.
    timebank_core::sql::exec(
        &d,
        "UPDATE device_settings SET value = '10' WHERE key = 'outbox_next_seq'",
        vec![],
    )
    .await
    .unwrap();
    timebank_core::sql::exec(
        &d,
        "UPDATE device_settings SET value = CAST(CAST(value AS BIGINT) + 1000 AS TEXT) \
         WHERE key LIKE 'sync_cursor:%' AND key <> 'sync_cursor:*'",
        vec![],
    )
    .await
    .unwrap();
    register_now(&d, &ctx, "r-2", &comm, 2).await;
    let other_ctx = Ctx::new(
        &c.boot.admin_id,
        outbox::device_id(&other).await.unwrap(),
        timebank_core::service::now_ms(),
    );
    register_now(&other, &other_ctx, "r-3", &comm, 3).await;
    sync::sync_once(&other, &Http::new(&c.base)).await.unwrap();

    let r = sync::sync_once(&d, &Http::new(&c.base)).await.unwrap();
    assert_eq!(r.pushed, 1, "{r:?}");
    assert!(r.resynced, "{r:?}");
    let q = "SELECT id AS c0 FROM members WHERE id LIKE 'r-%' ORDER BY id";
    assert_eq!(rows(&c.db, q).await, ["r-1", "r-2", "r-3"]);
    assert_eq!(rows(&d, q).await, ["r-1", "r-2", "r-3"]);
    assert_eq!(sync::status(&d).await.unwrap().pending, 0);
    c.stop().await;
}

/// A volunteer's laptop whose page size shrank on a slow line (to the least, 50) meets a page
/// of the change log holding only entries it does not get (staff's handling of a safeguarding
/// report): the pull goes on past it in the same round, to the resident registered after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_entries_withheld_from_a_volunteers_laptop_does_not_end_its_pull() {
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let desk = c.device("desk").await;
    let laptop = c.device_as("laptop", "volunteer").await;
    let (ctx, comm) = register_one(&c, &desk).await;
    let at = |ctx: &Ctx| {
        Ctx::new(
            &ctx.actor_id,
            &ctx.device_id,
            timebank_core::service::now_ms(),
        )
    };
    let report = Command::FileSafeguarding(FileSafeguarding {
        report_id: "sg-1".into(),
        subject_member_id: Some("r-1".into()),
        order_id: None,
        category: "neglect".into(),
        details: "三天没见她出门".into(),
    });
    execute(&desk, &at(&ctx), report).await.unwrap();
    sync::sync_once(&desk, &Http::new(&c.base)).await.unwrap();
    sync::sync_once(&laptop, &Http::new(&c.base)).await.unwrap();
    // Sixty entries of the report's row, and nothing else: more than a page.
    for i in 0..60 {
        let status = if i % 2 == 0 { "in_progress" } else { "open" };
        let update = Command::UpdateSafeguarding {
            report_id: "sg-1".into(),
            status: status.into(),
            resolution: None,
        };
        execute(&desk, &at(&ctx), update).await.unwrap();
        // One push each (one push logs a row it wrote twice once).
        sync::sync_once(&desk, &Http::new(&c.base)).await.unwrap();
    }
    register_now(&desk, &ctx, "r-2", &comm, 2).await;
    sync::sync_once(&desk, &Http::new(&c.base)).await.unwrap();
    timebank_core::sql::exec(
        &laptop,
        "INSERT INTO device_settings (key, value) VALUES (?, '50') \
         ON CONFLICT (key) DO UPDATE SET value = '50'",
        vec![sync::K_PULL_PAGE.into()],
    )
    .await
    .unwrap();
    sync::sync_once(&laptop, &Http::new(&c.base)).await.unwrap();
    let q = "SELECT id AS c0 FROM members WHERE id LIKE 'r-%' ORDER BY id";
    assert_eq!(rows(&laptop, q).await, ["r-1", "r-2"]);
    assert_eq!(
        rows(&laptop, "SELECT COUNT(*) AS c0 FROM safeguarding_reports").await,
        ["0"]
    );
    c.stop().await;
}

/// A transport whose first pull waits until it is let go, counting the pulls asked for.
struct HeldPull {
    http: Http,
    pulls: std::sync::atomic::AtomicUsize,
    go: tokio::sync::Notify,
}

impl Intercept for HeldPull {
    fn http(&self) -> &Http {
        &self.http
    }
    async fn pull(
        &self,
        token: &str,
        p: &str,
        after: i64,
        limit: i64,
    ) -> timebank_core::Result<sync::PullPage> {
        if self.pulls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            self.go.notified().await;
        }
        self.http.pull(token, p, after, limit).await
    }
}

/// Two rounds asked for at once on one device (the app's background loop, and `timebank sync`
/// or an enrolment's first pull) run one after the other: the second asks the server nothing
/// while the first is under way, then both end well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_runs_one_sync_round_at_a_time() {
    use std::sync::atomic::Ordering::SeqCst;
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let d = c.device("d").await;
    register_one(&c, &d).await;
    let t = std::sync::Arc::new(Through(HeldPull {
        http: Http::new(&c.base),
        pulls: Default::default(),
        go: tokio::sync::Notify::new(),
    }));
    let first = tokio::spawn({
        let (d, t) = (d.clone(), t.clone());
        async move { sync::sync_once(&d, &*t).await }
    });
    while t.pulls.load(SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let second = tokio::spawn({
        let (d, t) = (d.clone(), t.clone());
        async move { sync::sync_once(&d, &*t).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.pulls.load(SeqCst), 1, "the second round waits");
    t.go.notify_one();
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    assert_eq!((first.pushed, second.pushed), (1, 0));
    assert!(t.pulls.load(SeqCst) > 1);
    assert_eq!(sync::status(&d).await.unwrap().pending, 0);
    c.stop().await;
}

/// A device's setting `key`.
async fn setting(d: &sea_orm::DatabaseConnection, key: &str) -> Option<String> {
    outbox::get_setting(d, key).await.unwrap()
}

/// The address of member `r-1` on a device, and whether its `members` table has the column.
async fn device_address(d: &sea_orm::DatabaseConnection) -> Option<Option<String>> {
    let has = timebank_core::sql::scalar_i64(
        d,
        "SELECT COUNT(*) FROM pragma_table_info('members') WHERE name = 'address'",
        vec![],
    )
    .await
    .unwrap();
    if has == 0 {
        return None;
    }
    Some(
        timebank_core::sql::one(d, "SELECT address FROM members WHERE id = 'r-1'", vec![])
            .await
            .unwrap()
            .unwrap()
            .try_get("", "address")
            .unwrap(),
    )
}

/// A city a version ahead of the device: each page of changes it sends also holds a row of a
/// table the device's version does not have.
struct AheadOfUs(Http);

impl Intercept for AheadOfUs {
    fn http(&self) -> &Http {
        &self.0
    }
    async fn pull(
        &self,
        token: &str,
        p: &str,
        after: i64,
        limit: i64,
    ) -> timebank_core::Result<sync::PullPage> {
        let mut page = self.0.pull(token, p, after, limit).await?;
        if let Some(last) = page.changes.last().cloned() {
            page.changes.push(sync::Change {
                seq: last.seq,
                table: "future_things".into(),
                pk: "f-1".into(),
                op: "upsert".into(),
                row: serde_json::json!({ "id": "f-1" }),
            });
            page.checksum = sync::checksum(&page.changes);
        }
        Ok(page)
    }
}

/// A device one schema version behind the city (which serves two) pulls rows of a table that
/// a migration gave a new column, and of a new table: it applies the rest of each row (SQLite
/// refused the whole row, and the page failed in every round until the app was updated) and
/// skips the new table, remembering both. Once the app's update adds the column, the device
/// builds its journal's triggers again with the column, keeps its rows (offline, they are all
/// it has) and its next round pulls everything again, so the column has the city's values; the
/// same once an update adds the table. The device is made one version behind here by removing
/// a column of its members (`address`), and the city one ahead by a transport that adds a row
/// of a table `future_things` to its pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_one_schema_behind_takes_rows_with_new_columns_and_tables_and_pulls_again_once_updated(
) {
    use timebank_core::{db, sql};
    let c = City::start(false, &["府苑新村"], Rules::default())
        .await
        .unwrap();
    let path = c.dir.path().join("d.db");
    let d = c.device("d").await;
    register_one(&c, &d).await;
    let http = Http::new(&c.base);
    sync::sync_once(&d, &http).await.unwrap();

    // The device as an app of the version before: no `members.address` (its journal's
    // triggers name the column, so they go first and are built again without it).
    for op in ["insert", "update", "delete"] {
        sql::exec(&d, &format!("DROP TRIGGER cj_members_{op}"), vec![])
            .await
            .unwrap();
    }
    sql::exec(&d, "ALTER TABLE members DROP COLUMN address", vec![])
        .await
        .unwrap();
    sync::install_journal(&d).await.unwrap();

    // The city sets her address.
    let txn = db::begin_write(&c.db).await.unwrap();
    sql::exec(
        &txn,
        "UPDATE members SET address = '府苑新村 3 幢 201', name = '周桂芳' WHERE id = 'r-1'",
        vec![],
    )
    .await
    .unwrap();
    timebank_server::changes::log_changes(&txn, timebank_core::service::now_ms())
        .await
        .unwrap();
    txn.commit().await.unwrap();

    let ahead = Through(AheadOfUs(Http::new(&c.base)));
    let round = sync::sync_once(&d, &ahead).await;
    assert!(
        round.is_ok(),
        "the round of the device a version behind: {round:?}"
    );
    let name = "SELECT name AS c0 FROM members WHERE id = 'r-1'";
    assert_eq!(
        rows(&d, name).await,
        ["周桂芳"],
        "the rest of the pulled row is applied"
    );
    assert_eq!(device_address(&d).await, None);
    assert_eq!(
        setting(&d, sync::K_UNKNOWN_COLUMNS).await.as_deref(),
        Some(r#"{"future_things":[],"members":["address"]}"#)
    );
    let cursors = "SELECT COUNT(*) AS c0 FROM device_settings WHERE key LIKE 'sync_cursor:%'";
    let pulled = rows(&d, cursors).await;

    // The app is updated: its migration adds the column (empty), and the app opens the
    // database again. Its journal's triggers were built for an older schema.
    sql::exec(&d, "ALTER TABLE members ADD COLUMN address TEXT", vec![])
        .await
        .unwrap();
    sql::exec(
        &d,
        "UPDATE device_settings SET value = '0' WHERE key = ?",
        vec![sync::K_JOURNAL_SCHEMA.into()],
    )
    .await
    .unwrap();
    d.close().await.unwrap();
    let d = db::connect(&db::sqlite_url(&path)).await.unwrap();
    let journal = rows(
        &d,
        "SELECT sql AS c0 FROM sqlite_master WHERE name = 'cj_members_update'",
    )
    .await;
    assert!(
        journal[0].contains("OLD.address"),
        "the journal's trigger keeps the new column: {journal:?}"
    );
    assert_eq!(setting(&d, sync::K_PULL_AGAIN).await.as_deref(), Some("1"));
    assert_eq!(
        setting(&d, sync::K_UNKNOWN_COLUMNS).await.as_deref(),
        Some(r#"{"future_things":[]}"#),
        "the table is still unknown"
    );
    // Offline until the next round, it keeps what it pulled.
    assert_eq!(rows(&d, cursors).await, pulled);
    assert_eq!(device_address(&d).await, Some(None));
    assert_eq!(rows(&d, name).await, ["周桂芳"]);

    let r = sync::sync_once(&d, &http).await.unwrap();
    assert!(r.resynced, "{r:?}");
    assert_eq!(
        device_address(&d).await,
        Some(Some("府苑新村 3 幢 201".to_owned()))
    );
    assert_eq!(setting(&d, sync::K_PULL_AGAIN).await, None);
    let r = sync::sync_once(&d, &http).await.unwrap();
    assert!(!r.resynced, "once: {r:?}");

    // An update adds the table.
    sql::exec(
        &d,
        "CREATE TABLE future_things (id TEXT PRIMARY KEY)",
        vec![],
    )
    .await
    .unwrap();
    d.close().await.unwrap();
    let d = db::connect(&db::sqlite_url(&path)).await.unwrap();
    assert_eq!(setting(&d, sync::K_PULL_AGAIN).await.as_deref(), Some("1"));
    assert_eq!(setting(&d, sync::K_UNKNOWN_COLUMNS).await, None);
    c.stop().await;
}
