//! Test harness shared by the integration tests.
//!
//! - A fresh database per test: SQLite in a temporary file, or PostgreSQL in a database
//!   created for the test (`tb_test_<uuid>`) and dropped after it, also when the test panics.
//!   `TIMEBANK_SKIP_PG=1` skips the PostgreSQL variants with a notice; otherwise a PostgreSQL
//!   that cannot be reached fails the test (CI has PostgreSQL).
//! - [`both_backends!`] turns `async fn name(t: &TestDb)` into the tests `name::sqlite` and
//!   `name::postgres`.
//! - [`Town`]: the Xihu > Jiangcun hierarchy with 府苑新村 and its neighbour 蒋村花园, one
//!   center, the administrator, and helpers to register residents (with a PIN), family
//!   members, volunteers and staff. [`cast`] registers the people of the story.
#![allow(dead_code, clippy::unwrap_used)]

use sea_orm::{DatabaseConnection, EntityTrait, TransactionTrait};
use std::sync::Mutex;
use timebank_core::domain::{Relation, Role, Rules, Vetting};
use timebank_core::service::admin::{bootstrap, Bootstrap, Bootstrapped};
use timebank_core::service::command::*;
use timebank_core::service::{execute, members::hash_pin, Ctx, Outcome};
use timebank_core::{db, sql, CoreError};

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// The backends a test runs on: SQLite always, PostgreSQL unless `TIMEBANK_SKIP_PG=1`.
pub fn backends() -> Vec<Backend> {
    if skip_pg() {
        vec![Backend::Sqlite]
    } else {
        vec![Backend::Sqlite, Backend::Postgres]
    }
}

fn skip_pg() -> bool {
    let skip = std::env::var("TIMEBANK_SKIP_PG").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("notice: TIMEBANK_SKIP_PG=1, the PostgreSQL variant of this test is skipped");
    }
    skip
}

/// The maintenance database of the PostgreSQL server the tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("TIMEBANK_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of one test. Call [`TestDb::cleanup`] at the end of the test; if the test panics
/// before, the PostgreSQL database is dropped all the same (and the temp dir removes SQLite's
/// file).
pub struct TestDb {
    pub db: DatabaseConnection,
    pub backend: Backend,
    pg: Option<db::ScratchDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh, migrated database on `backend`; None when PostgreSQL is skipped.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite().await),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A fresh, migrated SQLite database in a temporary file.
    pub async fn sqlite() -> TestDb {
        Self::sqlite_with(true).await
    }

    /// A fresh, migrated PostgreSQL database, or None when `TIMEBANK_SKIP_PG=1`.
    pub async fn postgres() -> Option<TestDb> {
        Self::postgres_with(true).await
    }

    /// A database without any table (for the migration tests).
    pub async fn empty(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite_with(false).await),
            Backend::Postgres => Self::postgres_with(false).await,
        }
    }

    async fn sqlite_with(migrate: bool) -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = db::sqlite_url(&dir.path().join("timebank.db"));
        let db = if migrate {
            db::connect(&url).await
        } else {
            db::open(&url).await
        }
        .unwrap_or_else(|e| panic!("open SQLite at {url}: {e:?}"));
        TestDb {
            db,
            backend: Backend::Sqlite,
            pg: None,
            _dir: Some(dir),
        }
    }

    async fn postgres_with(migrate: bool) -> Option<TestDb> {
        if skip_pg() {
            return None;
        }
        let pg = db::ScratchDatabase::create(&pg_admin_url(), "tb_test")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must accept connections at {} (or set TIMEBANK_SKIP_PG=1): {e:?}",
                    pg_admin_url()
                )
            });
        // From here on the database exists: `pg` drops it whatever happens next.
        let url = pg.url();
        let opened = if migrate {
            db::connect(&url).await
        } else {
            db::open(&url).await
        };
        let db = opened.unwrap_or_else(|e| panic!("open PostgreSQL database {}: {e:?}", pg.name()));
        Some(TestDb {
            db,
            backend: Backend::Postgres,
            pg: Some(pg),
            _dir: None,
        })
    }

    /// Close the pool and drop the PostgreSQL database of this test.
    pub async fn cleanup(mut self) {
        self.db.close_by_ref().await.ok();
        if let Some(pg) = self.pg.take() {
            pg.drop_now().await.expect("the test's database dropped");
        }
    }
}

/// `both_backends!(a, #[ignore = "why"] b)` makes the tests `a::sqlite`, `a::postgres`, ... of
/// the functions `async fn a(t: &TestDb)` defined next to it.
#[macro_export]
macro_rules! both_backends {
    ($($(#[$m:meta])* $name:ident),+ $(,)?) => {$(
        mod $name {
            $(#[$m])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::common::TestDb::sqlite().await;
                super::$name(&t).await;
                t.cleanup().await;
            }

            $(#[$m])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(t) = $crate::common::TestDb::postgres().await {
                    super::$name(&t).await;
                    t.cleanup().await;
                }
            }
        }
    )+};
}

// ---------------------------------------------------------------------------------------------
// The town
// ---------------------------------------------------------------------------------------------

/// 2026-11-28 09:40 in Shanghai (01:40 UTC).
pub const T0: i64 = 1_795_830_000_000;
pub const MIN: i64 = 60_000;
/// When the people of a test are registered.
pub const SETUP_AT: i64 = T0 + MIN;

pub fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A bootstrapped device database: 杭州市 > 西湖区 > 蒋村街道 > {府苑新村, 蒋村花园}, the
/// 蒋村街道 center serving both, the programme with `rules`, and the administrator 周建华.
pub struct Town {
    pub boot: Bootstrapped,
    pub admin: String,
    /// 府苑新村, where the story happens.
    pub fuyuan: String,
    /// 蒋村花园, the neighbouring community in the same subdistrict.
    pub neighbour: String,
    phones: Mutex<u32>,
    /// Names of the commands that succeeded through [`Town::exec`], in order.
    log: Mutex<Vec<String>>,
}

impl Town {
    pub async fn bootstrap(db: &DatabaseConnection, rules: Rules) -> Town {
        let txn = db.begin().await.unwrap();
        let boot = bootstrap(
            &txn,
            &Bootstrap {
                city: ("杭州市".into(), "Hangzhou".into()),
                district: ("西湖区".into(), "Xihu".into()),
                subdistrict: ("蒋村街道".into(), "Jiangcun".into()),
                communities: vec![
                    ("府苑新村".into(), "Fuyuanxincun".into()),
                    ("蒋村花园".into(), "Jiangcun Garden".into()),
                ],
                center: ("蒋村街道社区服务中心".into(), "Jiangcun center".into()),
                admin_name: "周建华".into(),
                admin_phone: "13900000001".into(),
                admin_birth: date(1975, 5, 4),
                programme_name: "西湖区时间银行".into(),
                rules,
            },
            T0,
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        Town {
            admin: boot.admin_id.clone(),
            fuyuan: boot.community_ids[0].clone(),
            neighbour: boot.community_ids[1].clone(),
            boot,
            phones: Mutex::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn ctx(&self, who: &str, at: i64) -> Ctx {
        Ctx::new(who, &self.boot.device_id, at)
    }

    /// Run a command as `who` at `at` on this town's device.
    pub async fn exec(
        &self,
        db: &DatabaseConnection,
        who: &str,
        at: i64,
        cmd: Command,
    ) -> Result<Outcome, CoreError> {
        let name = cmd.name();
        let out = execute(db, &self.ctx(who, at), cmd).await;
        if out.is_ok() {
            self.log.lock().unwrap().push(name);
        }
        out
    }

    /// Run a command that must succeed.
    pub async fn ok(&self, db: &DatabaseConnection, who: &str, at: i64, cmd: Command) -> Outcome {
        let what = format!("{cmd:?}");
        self.exec(db, who, at, cmd)
            .await
            .unwrap_or_else(|e| panic!("{who} could not {what}: {e:?}"))
    }

    /// Run a command that must be refused; returns the refusal.
    pub async fn refused(
        &self,
        db: &DatabaseConnection,
        who: &str,
        at: i64,
        cmd: Command,
    ) -> CoreError {
        let what = format!("{cmd:?}");
        match self.exec(db, who, at, cmd).await {
            Ok(out) => panic!("{who} should have been refused {what}, got {out:?}"),
            Err(e) => e,
        }
    }

    /// Names of the commands that succeeded, in order.
    pub fn commands(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn next_phone(&self) -> String {
        let mut n = self.phones.lock().unwrap();
        *n += 1;
        format!("1380000{:04}", *n)
    }

    /// Register a member (by the administrator) and return their id.
    #[allow(clippy::too_many_arguments)]
    pub async fn register(
        &self,
        db: &DatabaseConnection,
        id: &str,
        name: &str,
        birth: chrono::NaiveDate,
        community: &str,
        roles: Vec<Role>,
        center: Option<&str>,
    ) -> String {
        let volunteer = roles.contains(&Role::Volunteer).then(|| VolunteerProfile {
            service_fields: vec!["daily_living".into(), "health".into()],
            skills: "做饭、陪同就医".into(),
            availability: "工作日晚上".into(),
        });
        self.ok(
            db,
            &self.admin,
            SETUP_AT,
            Command::RegisterMember(RegisterMember {
                member_id: id.into(),
                name: name.into(),
                phone: self.next_phone(),
                date_of_birth: birth,
                home_community_id: community.into(),
                address: Some(format!("{name}家，府苑新村12幢3单元")),
                roles,
                hardship: false,
                center_id: center.map(str::to_owned),
                volunteer,
            }),
        )
        .await;
        id.to_owned()
    }

    /// A resident of 府苑新村, with a confirmation PIN if given.
    pub async fn resident(
        &self,
        db: &DatabaseConnection,
        id: &str,
        name: &str,
        birth: chrono::NaiveDate,
        pin: Option<&str>,
    ) -> String {
        let fuyuan = self.fuyuan.clone();
        self.register(db, id, name, birth, &fuyuan, vec![Role::Resident], None)
            .await;
        if let Some(pin) = pin {
            self.ok(
                db,
                &self.admin,
                SETUP_AT,
                Command::SetPin {
                    member_id: id.into(),
                    pin_hash: hash_pin(pin).unwrap(),
                },
            )
            .await;
        }
        id.to_owned()
    }

    /// A family member living in 府苑新村, linked to `parent` as their child.
    pub async fn child_of(
        &self,
        db: &DatabaseConnection,
        parent: &str,
        id: &str,
        name: &str,
        birth: chrono::NaiveDate,
    ) -> String {
        let fuyuan = self.fuyuan.clone();
        self.register(
            db,
            id,
            name,
            birth,
            &fuyuan,
            vec![Role::Resident, Role::Family],
            None,
        )
        .await;
        self.link(db, parent, id, Relation::Child).await;
        id.to_owned()
    }

    /// Record that `relative` is `member`'s `relation`.
    pub async fn link(
        &self,
        db: &DatabaseConnection,
        member: &str,
        relative: &str,
        relation: Relation,
    ) {
        self.ok(
            db,
            &self.admin,
            SETUP_AT,
            Command::LinkFamily {
                member_id: member.into(),
                relative_id: relative.into(),
                relation,
            },
        )
        .await;
    }

    /// A volunteer (also a resident) of `community`, verified by staff if `verified`.
    pub async fn volunteer(
        &self,
        db: &DatabaseConnection,
        id: &str,
        name: &str,
        birth: chrono::NaiveDate,
        community: &str,
        verified: bool,
    ) -> String {
        self.register(
            db,
            id,
            name,
            birth,
            community,
            vec![Role::Resident, Role::Volunteer],
            None,
        )
        .await;
        if verified {
            self.verify(db, id).await;
        }
        id.to_owned()
    }

    pub async fn verify(&self, db: &DatabaseConnection, id: &str) {
        self.ok(
            db,
            &self.admin,
            SETUP_AT,
            Command::SetVetting {
                member_id: id.into(),
                vetting: Vetting::Verified,
            },
        )
        .await;
    }

    /// Staff of `center` (this town's center when None), living in 府苑新村.
    pub async fn staff(
        &self,
        db: &DatabaseConnection,
        id: &str,
        name: &str,
        center: Option<&str>,
    ) -> String {
        let center = center.unwrap_or(&self.boot.center_id).to_owned();
        let fuyuan = self.fuyuan.clone();
        self.register(
            db,
            id,
            name,
            date(1982, 3, 12),
            &fuyuan,
            vec![Role::Staff],
            Some(&center),
        )
        .await;
        id.to_owned()
    }

    /// A second center, in the same subdistrict, serving only a third community 文鼎苑 (not
    /// 府苑新村). There is no command for centers: a device gets them from the city.
    pub async fn second_center(&self, db: &DatabaseConnection) -> (String, String) {
        use sea_orm::IntoActiveModel;
        use timebank_core::entities::{center_communities, centers, places};
        let community = "place-wendingyuan".to_string();
        let center = "center-wendingyuan".to_string();
        places::Entity::insert(
            places::Model {
                id: community.clone(),
                parent_id: Some(self.boot.subdistrict_id.clone()),
                level: "community".into(),
                name_zh: "文鼎苑".into(),
                name_en: "Wendingyuan".into(),
            }
            .into_active_model(),
        )
        .exec_without_returning(db)
        .await
        .unwrap();
        centers::Entity::insert(
            centers::Model {
                id: center.clone(),
                name_zh: "文鼎苑社区服务站".into(),
                name_en: "Wendingyuan station".into(),
                subdistrict_id: self.boot.subdistrict_id.clone(),
            }
            .into_active_model(),
        )
        .exec_without_returning(db)
        .await
        .unwrap();
        center_communities::Entity::insert(
            center_communities::Model {
                center_id: center.clone(),
                community_id: community.clone(),
            }
            .into_active_model(),
        )
        .exec_without_returning(db)
        .await
        .unwrap();
        (center, community)
    }

    pub async fn balance(&self, db: &DatabaseConnection, member: &str) -> i64 {
        timebank_core::service::ledger::member_account(db, member)
            .await
            .unwrap()
            .balance
    }

    pub async fn issuing_balance(&self, db: &DatabaseConnection) -> i64 {
        timebank_core::service::ledger::issuing_account(db, &self.boot.programme_id)
            .await
            .unwrap()
            .balance
    }
}

/// The people of the story, all in 府苑新村 unless said otherwise.
pub struct Cast {
    /// 李红, staff of the 蒋村街道 center.
    pub staff: String,
    /// 王德明, 85, lives alone; confirms visits with the PIN [`WANG_PIN`].
    pub wang: String,
    /// 王秀芝, his daughter (linked as his child).
    pub xiuzhi: String,
    /// 马军, a verified volunteer.
    pub majun: String,
    /// 赵小明, a resident of 45 with no family link to anyone.
    pub zhao: String,
    /// 陈志强, a verified volunteer of the neighbouring community 蒋村花园.
    pub chen: String,
    /// 刘海燕, a volunteer not yet verified.
    pub liu: String,
}

pub const WANG_PIN: &str = "2468";

/// A town with the people of the story registered (at [`SETUP_AT`]).
pub async fn cast(db: &DatabaseConnection, rules: Rules) -> (Town, Cast) {
    let town = Town::bootstrap(db, rules).await;
    let fuyuan = town.fuyuan.clone();
    let neighbour = town.neighbour.clone();
    let staff = town.staff(db, "li-hong", "李红", None).await;
    let wang = town
        .resident(
            db,
            "wang-deming",
            "王德明",
            date(1941, 8, 15),
            Some(WANG_PIN),
        )
        .await;
    let xiuzhi = town
        .child_of(db, &wang, "wang-xiuzhi", "王秀芝", date(1968, 2, 20))
        .await;
    let majun = town
        .volunteer(db, "ma-jun", "马军", date(1985, 10, 1), &fuyuan, true)
        .await;
    let zhao = town
        .resident(db, "zhao-xiaoming", "赵小明", date(1981, 6, 1), None)
        .await;
    let chen = town
        .volunteer(
            db,
            "chen-zhiqiang",
            "陈志强",
            date(1990, 1, 1),
            &neighbour,
            true,
        )
        .await;
    let liu = town
        .volunteer(db, "liu-haiyan", "刘海燕", date(1992, 1, 1), &fuyuan, false)
        .await;
    (
        town,
        Cast {
            staff,
            wang,
            xiuzhi,
            majun,
            zhao,
            chen,
            liu,
        },
    )
}

/// An order of a meal delivery for `beneficiary`: one visit, one volunteer, as soon as
/// possible. Change the fields for other cases.
pub fn order(id: &str, beneficiary: &str, minutes: i32) -> PostOrder {
    PostOrder {
        order_id: id.into(),
        beneficiary_id: beneficiary.into(),
        service_code: "meal_delivery".into(),
        description: "父亲一个人在家，麻烦送一份午饭".into(),
        urgent: false,
        place_hint: "府苑新村12幢".into(),
        address: None,
        window_start: None,
        window_end: None,
        expected_minutes: minutes,
        volunteers_needed: 1,
        visits: vec![],
    }
}

pub fn post(id: &str, beneficiary: &str, minutes: i32) -> Command {
    Command::PostOrder(order(id, beneficiary, minutes))
}

pub fn accept(order_id: &str) -> Command {
    Command::AcceptOrder {
        order_id: order_id.into(),
    }
}

pub fn check_in(order_id: &str) -> Command {
    Command::CheckIn {
        visit_id: None,
        order_id: order_id.into(),
    }
}

pub fn check_out(order_id: &str) -> Command {
    Command::CheckOut {
        order_id: order_id.into(),
        note: None,
        served: None,
    }
}

pub fn confirm_pin(order_id: &str, pin: &str) -> Command {
    Command::ConfirmVisit {
        visit_id: None,
        order_id: order_id.into(),
        method: timebank_core::domain::ConfirmMethod::Pin,
        pin: Some(pin.into()),
        confirms: None,
    }
}

pub fn confirm_by(order_id: &str, method: timebank_core::domain::ConfirmMethod) -> Command {
    Command::ConfirmVisit {
        visit_id: None,
        order_id: order_id.into(),
        method,
        pin: None,
        confirms: None,
    }
}

pub fn gift(transfer_id: &str, to: &str, minutes: i64) -> Command {
    Command::Gift {
        transfer_id: transfer_id.into(),
        to_member_id: to.into(),
        minutes,
        note: "给家里人".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the store
// ---------------------------------------------------------------------------------------------

pub async fn scalar(db: &DatabaseConnection, q: &str, values: Vec<sea_orm::Value>) -> i64 {
    sql::scalar_i64(db, q, values)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
}

pub async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    scalar(db, &format!("SELECT COUNT(*) FROM {table}"), vec![]).await
}

/// Row counts of the tables a command writes, to check that a refused command wrote nothing.
pub async fn counts(db: &DatabaseConnection) -> Vec<(&'static str, i64)> {
    let mut v = Vec::new();
    for t in [
        "orders",
        "order_volunteers",
        "visit_attendance",
        "transfers",
        "ledger_entries",
        "ledger_flags",
        "audit_log",
        "outbox",
        "inbox_messages",
        "feedback",
        "family_links",
        "members",
        "activity_signups",
        "device_settings",
    ] {
        v.push((t, count(db, t).await));
    }
    v
}

pub async fn order_row(
    db: &DatabaseConnection,
    id: &str,
) -> timebank_core::entities::orders::Model {
    timebank_core::entities::orders::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no order {id}"))
}

pub async fn order_status(db: &DatabaseConnection, id: &str) -> String {
    order_row(db, id).await.status
}

/// Messages of `kind` in `member`'s inbox.
pub async fn inbox(db: &DatabaseConnection, member: &str, kind: &str) -> Vec<serde_json::Value> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    use timebank_core::entities::inbox_messages as m;
    m::Entity::find()
        .filter(m::Column::MemberId.eq(member))
        .filter(m::Column::Kind.eq(kind))
        .order_by_asc(m::Column::CreatedAt)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.params).unwrap())
        .collect()
}

/// Transfers in the order they were written.
pub async fn transfers(db: &DatabaseConnection) -> Vec<timebank_core::entities::transfers::Model> {
    use sea_orm::QueryOrder;
    use timebank_core::entities::transfers as t;
    t::Entity::find()
        .order_by_asc(t::Column::CreatedAt)
        .order_by_asc(t::Column::Id)
        .all(db)
        .await
        .unwrap()
}

/// (account, amount) of the entries of one transfer, sorted.
pub async fn legs(db: &DatabaseConnection, transfer_id: &str) -> Vec<(String, i64)> {
    use sea_orm::{ColumnTrait, QueryFilter};
    use timebank_core::entities::ledger_entries as e;
    let mut v: Vec<(String, i64)> = e::Entity::find()
        .filter(e::Column::TransferId.eq(transfer_id))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.account_id, r.amount))
        .collect();
    v.sort();
    v
}

pub async fn flags(db: &DatabaseConnection) -> Vec<timebank_core::entities::ledger_flags::Model> {
    use sea_orm::QueryOrder;
    use timebank_core::entities::ledger_flags as f;
    f::Entity::find()
        .order_by_asc(f::Column::CreatedAt)
        .order_by_asc(f::Column::Id)
        .all(db)
        .await
        .unwrap()
}

/// Every account's balance equals the sum of its entries, every transfer sums to zero, and
/// all entries sum to zero. Panics naming what is wrong.
pub async fn assert_ledger_balanced(db: &DatabaseConnection, label: &str) {
    let mismatched = scalar(
        db,
        "SELECT COUNT(*) FROM accounts a WHERE a.balance <> \
         (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.account_id = a.id)",
        vec![],
    )
    .await;
    assert_eq!(mismatched, 0, "{label}: balances differ from their entries");
    let unbalanced = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT transfer_id FROM ledger_entries GROUP BY transfer_id \
         HAVING SUM(amount) <> 0 OR COUNT(*) < 2) u",
        vec![],
    )
    .await;
    assert_eq!(unbalanced, 0, "{label}: a transfer does not sum to zero");
    let total = scalar(
        db,
        "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries",
        vec![],
    )
    .await;
    assert_eq!(total, 0, "{label}: all entries do not sum to zero");
}

// ---------------------------------------------------------------------------------------------
// The earlier harness API (kept for tests written against it, e.g. replay.rs)
// ---------------------------------------------------------------------------------------------

/// A fresh, migrated SQLite database (same as [`TestDb::sqlite`]).
pub async fn sqlite() -> TestDb {
    TestDb::sqlite().await
}

/// The people of the story as fields, on a bootstrapped town (see [`cast`]).
pub struct World {
    pub boot: Bootstrapped,
    pub admin: String,
    pub staff: String,
    pub wang: String,
    pub xiuzhi: String,
    pub majun: String,
    pub zhao: String,
    pub neighbour_vol: String,
    pub unverified_vol: String,
    pub town: Town,
}

pub async fn world(db: &DatabaseConnection, rules: Rules) -> World {
    let (town, p) = cast(db, rules).await;
    World {
        boot: town.boot.clone(),
        admin: town.admin.clone(),
        staff: p.staff,
        wang: p.wang,
        xiuzhi: p.xiuzhi,
        majun: p.majun,
        zhao: p.zhao,
        neighbour_vol: p.chen,
        unverified_vol: p.liu,
        town,
    }
}

impl World {
    pub fn fuyuan(&self) -> &str {
        &self.town.fuyuan
    }
    pub async fn exec(
        &self,
        db: &DatabaseConnection,
        who: &str,
        at: i64,
        cmd: Command,
    ) -> Result<Outcome, CoreError> {
        self.town.exec(db, who, at, cmd).await
    }
    pub async fn balance(&self, db: &DatabaseConnection, member: &str) -> i64 {
        self.town.balance(db, member).await
    }
}
