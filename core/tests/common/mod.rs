//! Test harness: a fresh database per test on SQLite (a temp file) and on PostgreSQL (a
//! database created for the test and dropped after it), and the people of the story.
#![allow(dead_code, clippy::unwrap_used)]
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use timebank_core::domain::{Relation, Role, Rules, Vetting};
use timebank_core::service::admin::{bootstrap, Bootstrap, Bootstrapped};
use timebank_core::service::command::*;
use timebank_core::service::{execute, members::hash_pin, Ctx, Outcome};
use timebank_core::{db, CoreError};

pub struct TestDb {
    pub db: DatabaseConnection,
    pub backend: &'static str,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn pg_admin_url() -> String {
    std::env::var("TIMEBANK_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let db = db::connect(&db::sqlite_url(&dir.path().join("t.db")))
        .await
        .unwrap();
    TestDb {
        db,
        backend: "sqlite",
        pg_name: None,
        _dir: Some(dir),
    }
}

/// A fresh PostgreSQL database, or None when TIMEBANK_SKIP_PG=1. A connection failure fails
/// the test: CI has PostgreSQL.
pub async fn postgres() -> Option<TestDb> {
    if std::env::var("TIMEBANK_SKIP_PG").is_ok_and(|v| v == "1") {
        eprintln!("TIMEBANK_SKIP_PG=1: skipping the PostgreSQL variant");
        return None;
    }
    let name = format!("tb_test_{}", uuid::Uuid::now_v7().simple());
    let admin = db::open(&pg_admin_url())
        .await
        .expect("PostgreSQL must be running on 127.0.0.1:5432 (or set TIMEBANK_SKIP_PG=1)");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.ok();
    let base = pg_admin_url();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    let db = db::connect(&url).await.unwrap();
    Some(TestDb {
        db,
        backend: "postgres",
        pg_name: Some(name),
        _dir: None,
    })
}

pub async fn backends() -> Vec<TestDb> {
    let mut v = vec![sqlite().await];
    if let Some(p) = postgres().await {
        v.push(p);
    }
    v
}

impl TestDb {
    pub async fn cleanup(self) {
        self.db.close().await.ok();
        if let Some(name) = self.pg_name {
            let admin = db::open(&pg_admin_url()).await.unwrap();
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
            admin.close().await.ok();
        }
    }
}

pub const T0: i64 = 1_795_830_000_000; // 2026-11-28 ~01:40 UTC
pub const MIN: i64 = 60_000;

/// The people of the story in Fuyuanxincun (and one volunteer next door).
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
}

pub fn ctx(who: &str, dev: &str, at: i64) -> Ctx {
    Ctx::new(who, dev, at)
}

impl World {
    pub fn fuyuan(&self) -> &str {
        &self.boot.community_ids[0]
    }
    pub async fn exec(
        &self,
        db: &DatabaseConnection,
        who: &str,
        at: i64,
        cmd: Command,
    ) -> Result<Outcome, CoreError> {
        execute(db, &Ctx::new(who, &self.boot.device_id, at), cmd).await
    }
    pub async fn balance(&self, db: &DatabaseConnection, member: &str) -> i64 {
        timebank_core::service::ledger::member_account(db, member)
            .await
            .unwrap()
            .balance
    }
}

pub fn reg(
    id: &str,
    name: &str,
    phone: &str,
    dob: (i32, u32, u32),
    roles: Vec<Role>,
    community: &str,
    volunteer: bool,
) -> Command {
    Command::RegisterMember(RegisterMember {
        member_id: id.into(),
        name: name.into(),
        phone: phone.into(),
        date_of_birth: chrono::NaiveDate::from_ymd_opt(dob.0, dob.1, dob.2).unwrap(),
        home_community_id: community.into(),
        address: Some(format!("{name}的家")),
        roles,
        hardship: false,
        center_id: None,
        volunteer: volunteer.then(|| VolunteerProfile {
            service_fields: vec!["daily_living".into()],
            skills: String::new(),
            availability: String::new(),
        }),
    })
}

pub async fn world(db: &DatabaseConnection, rules: Rules) -> World {
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
            admin_birth: chrono::NaiveDate::from_ymd_opt(1975, 5, 4).unwrap(),
            programme_name: "西湖区时间银行".into(),
            rules,
        },
        T0,
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    let dev = boot.device_id.clone();
    let admin = boot.admin_id.clone();
    let fuyuan = boot.community_ids[0].clone();
    let garden = boot.community_ids[1].clone();
    let run = |who: String, cmd: Command| {
        let dev = dev.clone();
        async move {
            execute(db, &Ctx::new(&who, &dev, T0 + MIN), cmd)
                .await
                .unwrap()
        }
    };
    let staff = "staff-li".to_string();
    run(
        admin.clone(),
        Command::RegisterMember(RegisterMember {
            member_id: staff.clone(),
            name: "李红".into(),
            phone: "13900000002".into(),
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1982, 3, 12).unwrap(),
            home_community_id: fuyuan.clone(),
            address: None,
            roles: vec![Role::Staff],
            hardship: false,
            center_id: Some(boot.center_id.clone()),
            volunteer: None,
        }),
    )
    .await;
    run(
        staff.clone(),
        reg(
            "wang",
            "王德明",
            "13700000001",
            (1941, 8, 15),
            vec![Role::Resident],
            &fuyuan,
            false,
        ),
    )
    .await;
    run(
        staff.clone(),
        reg(
            "xiuzhi",
            "王秀芝",
            "13700000002",
            (1968, 2, 20),
            vec![Role::Resident, Role::Family],
            &fuyuan,
            false,
        ),
    )
    .await;
    run(
        staff.clone(),
        reg(
            "majun",
            "马军",
            "13700000003",
            (1985, 10, 1),
            vec![Role::Resident, Role::Volunteer],
            &fuyuan,
            true,
        ),
    )
    .await;
    run(
        staff.clone(),
        reg(
            "zhao",
            "赵小明",
            "13700000004",
            (1981, 6, 1),
            vec![Role::Resident],
            &fuyuan,
            false,
        ),
    )
    .await;
    run(
        staff.clone(),
        reg(
            "chen",
            "陈志强",
            "13700000005",
            (1990, 1, 1),
            vec![Role::Resident, Role::Volunteer],
            &garden,
            true,
        ),
    )
    .await;
    run(
        staff.clone(),
        reg(
            "liu",
            "刘海燕",
            "13700000006",
            (1992, 1, 1),
            vec![Role::Resident, Role::Volunteer],
            &fuyuan,
            true,
        ),
    )
    .await;
    run(
        staff.clone(),
        Command::LinkFamily {
            member_id: "wang".into(),
            relative_id: "xiuzhi".into(),
            relation: Relation::Child,
        },
    )
    .await;
    run(
        staff.clone(),
        Command::SetVetting {
            member_id: "majun".into(),
            vetting: Vetting::Verified,
        },
    )
    .await;
    run(
        staff.clone(),
        Command::SetVetting {
            member_id: "chen".into(),
            vetting: Vetting::Verified,
        },
    )
    .await;
    run(
        staff.clone(),
        Command::SetPin {
            member_id: "wang".into(),
            pin_hash: hash_pin("2468").unwrap(),
        },
    )
    .await;
    World {
        boot,
        admin,
        staff,
        wang: "wang".into(),
        xiuzhi: "xiuzhi".into(),
        majun: "majun".into(),
        zhao: "zhao".into(),
        neighbour_vol: "chen".into(),
        unverified_vol: "liu".into(),
    }
}

pub fn post(order_id: &str, for_whom: &str, minutes: i32) -> Command {
    Command::PostOrder(PostOrder {
        order_id: order_id.into(),
        beneficiary_id: for_whom.into(),
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
    })
}

/// Row count of a table (to check that refused commands wrote nothing).
pub async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    timebank_core::sql::scalar_i64(db, &format!("SELECT COUNT(*) FROM {table}"), vec![])
        .await
        .unwrap()
}

pub async fn counts(db: &DatabaseConnection) -> Vec<i64> {
    let mut v = Vec::new();
    for t in [
        "orders",
        "transfers",
        "ledger_entries",
        "audit_log",
        "outbox",
        "inbox_messages",
        "ledger_flags",
        "feedback",
    ] {
        v.push(count(db, t).await);
    }
    v
}
