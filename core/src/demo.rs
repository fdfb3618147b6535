//! A realistic demo dataset: the Xihu > Jiangcun hierarchy with Fuyuanxincun and its
//! neighbours, a few hundred members with Chinese names, verified volunteers, orders in every
//! state, activities, feedback and a ledger history. Everything goes through the service
//! layer, so the audit trail and the outbox are filled exactly as in real use.
use crate::domain::{ConfirmMethod, Relation, Role, Rules, Vetting};
use crate::error::Result;
use crate::service::admin::{bootstrap, Bootstrap};
use crate::service::command::*;
use crate::service::{execute, members::hash_pin, new_id, Ctx};
use sea_orm::DatabaseConnection;
use serde::Serialize;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "沈", "蒋", "蔡",
];
const GIVEN: &[&str] = &[
    "建国", "秀英", "桂英", "玉兰", "志强", "海燕", "丽华", "国强", "美华", "文斌", "晓东", "春梅",
    "红霞", "永军", "德明", "淑珍", "凤英", "金花", "伟", "敏", "静", "磊", "洋", "婷", "杰", "涛",
    "明", "超", "霞", "平", "刚", "芳", "勇", "艳", "军", "娟", "斌", "琳", "浩然", "子涵", "雨桐",
    "佳怡", "梓轩", "思远", "欣怡",
];
const COMMUNITIES: &[(&str, &str)] = &[
    ("府苑新村", "Fuyuanxincun"),
    ("蒋村花园", "Jiangcun Garden"),
    ("西溪花园", "Xixi Garden"),
    ("龙章社区", "Longzhang"),
    ("五常村", "Wuchang Village"),
];

/// Key people of the demo, printed so that one can sign in as them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct DemoSummary {
    pub device_id: String,
    pub admin_phone: String,
    pub staff_phone: String,
    pub volunteer_phone: String,
    pub family_phone: String,
    pub elder_phone: String,
    pub elder_pin: String,
    /// The PIN of the demo's staff, volunteer, family member and administrator.
    pub sign_in_pin: String,
    pub members: usize,
    pub orders: usize,
    pub activities: usize,
    pub fuyuanxincun_id: String,
}

/// The PIN with which the demo's staff, volunteer, family member and administrator sign in.
pub const DEMO_SIGN_IN_PIN: &str = "1234";

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() as usize) % xs.len()]
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() as i64) % (hi - lo + 1)
    }
}

fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// Seed `db` (an empty, migrated database). `progress(done, total)` reports steps.
pub async fn seed(
    db: &DatabaseConnection,
    now_ms: i64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<DemoSummary> {
    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;
    let start = now_ms - 14 * DAY;
    let txn = crate::db::begin_write(db).await?;
    let boot = bootstrap(
        &txn,
        &Bootstrap {
            city: ("杭州市".into(), "Hangzhou".into()),
            district: ("西湖区".into(), "Xihu District".into()),
            subdistrict: ("蒋村街道".into(), "Jiangcun Subdistrict".into()),
            communities: COMMUNITIES
                .iter()
                .map(|(z, e)| (z.to_string(), e.to_string()))
                .collect(),
            center: (
                "蒋村街道社区服务中心".into(),
                "Jiangcun Community Service Center".into(),
            ),
            admin_name: "周建华".into(),
            admin_phone: "13900000001".into(),
            admin_birth: date(1975, 5, 4),
            programme_name: "西湖区时间银行".into(),
            rules: Rules::default(),
        },
        start,
    )
    .await?;
    txn.commit().await?;
    let dev = boot.device_id.clone();
    let mut t = start + MIN;
    let mut tick = |d: i64| {
        t += d;
        t
    };
    let admin = boot.admin_id.clone();
    let mut rng = Lcg(20261128);
    let mut phone_n = 13_800_000_000u64;
    let mut next_phone = || {
        phone_n += 7;
        phone_n.to_string()
    };
    let total_steps = 6u64;
    progress(1, total_steps);

    // Staff: one per community, all at the center.
    let mut staff = Vec::new();
    for (i, cid) in boot.community_ids.iter().enumerate() {
        let id = new_id();
        let phone = if i == 0 {
            "13900000002".to_string()
        } else {
            next_phone()
        };
        execute(
            db,
            &Ctx::new(&admin, &dev, tick(MIN)),
            Command::RegisterMember(RegisterMember {
                member_id: id.clone(),
                name: format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN)),
                phone,
                date_of_birth: date(1980 + i as i32, 3, 12),
                home_community_id: cid.clone(),
                address: None,
                roles: vec![Role::Staff],
                hardship: false,
                center_id: Some(boot.center_id.clone()),
                volunteer: None,
            }),
        )
        .await?;
        staff.push(id);
    }
    let staff0 = staff[0].clone();
    let fuyuan = boot.community_ids[0].clone();

    // The story's people in Fuyuanxincun.
    let wang = new_id();
    let xiuzhi = new_id();
    let majun = new_id();
    let reg = |id: &str,
               name: &str,
               phone: &str,
               dob,
               roles: Vec<Role>,
               addr: Option<&str>,
               vol: bool,
               cid: &str| {
        Command::RegisterMember(RegisterMember {
            member_id: id.into(),
            name: name.into(),
            phone: phone.into(),
            date_of_birth: dob,
            home_community_id: cid.into(),
            address: addr.map(str::to_owned),
            roles,
            hardship: false,
            center_id: None,
            volunteer: vol.then(|| VolunteerProfile {
                service_fields: vec![
                    "daily_living".into(),
                    "health".into(),
                    "companionship".into(),
                    "emergency".into(),
                ],
                skills: "会开车，懂一点护理".into(),
                availability: "工作日晚上，周末全天".into(),
            }),
        })
    };
    let sctx = |at: i64| Ctx::new(&staff0, &dev, at);
    execute(
        db,
        &sctx(tick(MIN)),
        reg(
            &wang,
            "王德明",
            "13700000001",
            date(1941, 8, 15),
            vec![Role::Resident],
            Some("府苑新村12幢2单元301室"),
            false,
            &fuyuan,
        ),
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        reg(
            &xiuzhi,
            "王秀芝",
            "13700000002",
            date(1968, 2, 20),
            vec![Role::Resident, Role::Family],
            Some("文一西路88号"),
            false,
            &fuyuan,
        ),
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        reg(
            &majun,
            "马军",
            "13700000003",
            date(1985, 10, 1),
            vec![Role::Resident, Role::Volunteer],
            Some("府苑新村8幢1单元502室"),
            true,
            &fuyuan,
        ),
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        Command::LinkFamily {
            member_id: wang.clone(),
            relative_id: xiuzhi.clone(),
            relation: Relation::Child,
        },
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        Command::SetVetting {
            member_id: majun.clone(),
            vetting: Vetting::Verified,
        },
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        Command::SetPin {
            member_id: wang.clone(),
            pin_hash: hash_pin("2468")?,
        },
    )
    .await?;
    // The people who sign in to the desktop app in the demo share one PIN.
    for who in [&admin, &staff0, &xiuzhi, &majun] {
        execute(
            db,
            &sctx(tick(MIN)),
            Command::SetPin {
                member_id: who.clone(),
                pin_hash: hash_pin(DEMO_SIGN_IN_PIN)?,
            },
        )
        .await?;
    }
    progress(2, total_steps);

    // Residents, family and volunteers in every community.
    let mut elders: Vec<(String, String, String)> =
        vec![(wang.clone(), fuyuan.clone(), staff0.clone())];
    let mut volunteers: Vec<(String, String)> = vec![(majun.clone(), fuyuan.clone())];
    let mut members = 3 + staff.len() + 1;
    for (ci, cid) in boot.community_ids.iter().enumerate() {
        let st = staff[ci].clone();
        let c = |at: i64| Ctx::new(&st, &dev, at);
        for k in 0..22 {
            let id = new_id();
            let name = format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN));
            let dob = date(
                1934 + rng.range(0, 26) as i32,
                1 + rng.range(0, 11) as u32,
                1 + rng.range(0, 27) as u32,
            );
            let addr = format!(
                "{}{}幢{}单元{}室",
                COMMUNITIES[ci].0,
                rng.range(1, 30),
                rng.range(1, 4),
                rng.range(101, 602)
            );
            execute(
                db,
                &c(tick(MIN)),
                reg(
                    &id,
                    &name,
                    &next_phone(),
                    dob,
                    vec![Role::Resident],
                    Some(&addr),
                    false,
                    cid,
                ),
            )
            .await?;
            if k < 4 {
                execute(
                    db,
                    &c(tick(MIN)),
                    Command::SetPin {
                        member_id: id.clone(),
                        pin_hash: hash_pin(&format!("{:04}", 1000 + k * 1111))?,
                    },
                )
                .await?;
            }
            if k % 3 == 0 {
                let fam = new_id();
                let fname = format!(
                    "{}{}",
                    &name.chars().next().map(String::from).unwrap_or_default(),
                    rng.pick(GIVEN)
                );
                execute(
                    db,
                    &c(tick(MIN)),
                    reg(
                        &fam,
                        &fname,
                        &next_phone(),
                        date(1965 + rng.range(0, 20) as i32, 6, 1),
                        vec![Role::Family],
                        None,
                        false,
                        cid,
                    ),
                )
                .await?;
                execute(
                    db,
                    &c(tick(MIN)),
                    Command::LinkFamily {
                        member_id: id.clone(),
                        relative_id: fam,
                        relation: *rng.pick(&[
                            Relation::Child,
                            Relation::Grandchild,
                            Relation::Child,
                        ]),
                    },
                )
                .await?;
                members += 1;
            }
            elders.push((id, cid.clone(), st.clone()));
            members += 1;
        }
        for k in 0..30 {
            let id = new_id();
            let name = format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN));
            let dob = date(
                1950 + rng.range(0, 50) as i32,
                1 + rng.range(0, 11) as u32,
                1 + rng.range(0, 27) as u32,
            );
            let fields: Vec<String> = (0..3)
                .map(|_| rng.pick(crate::service::admin::CATALOGUE).0.to_string())
                .collect();
            execute(
                db,
                &c(tick(MIN)),
                Command::RegisterMember(RegisterMember {
                    member_id: id.clone(),
                    name,
                    phone: next_phone(),
                    date_of_birth: dob,
                    home_community_id: cid.clone(),
                    address: None,
                    roles: vec![Role::Resident, Role::Volunteer],
                    hardship: false,
                    center_id: None,
                    volunteer: Some(VolunteerProfile {
                        service_fields: fields,
                        skills: String::new(),
                        availability: "周末".into(),
                    }),
                }),
            )
            .await?;
            if k < 26 {
                execute(
                    db,
                    &c(tick(MIN)),
                    Command::SetVetting {
                        member_id: id.clone(),
                        vetting: Vetting::Verified,
                    },
                )
                .await?;
                volunteers.push((id, cid.clone()));
            }
            members += 1;
        }
    }
    progress(3, total_steps);

    // Orders in every state.
    let services: Vec<&str> = crate::service::admin::CATALOGUE
        .iter()
        .flat_map(|f| f.3.iter().map(|s| s.0))
        .collect();
    let mut orders = 0;
    for (i, (elder, cid, st)) in elders.iter().enumerate() {
        let n_orders = if i == 0 { 3 } else { 1 + (i % 2) };
        for j in 0..n_orders {
            let oid = new_id();
            let vols: Vec<&String> = volunteers
                .iter()
                .filter(|(_, c)| c == cid)
                .map(|(v, _)| v)
                .collect();
            let vol = if i == 0 {
                &majun
            } else {
                vols[rng.range(0, vols.len() as i64 - 1) as usize]
            };
            let svc = if i == 0 {
                "meal_delivery"
            } else {
                *rng.pick(&services)
            };
            let urgent = rng.range(0, 9) == 0;
            let at = tick(rng.range(20, 90) * MIN);
            let ctx = |who: &str, at: i64| Ctx::new(who, &dev, at);
            // Mostly completed, some of every other state.
            let stage = if i == 0 {
                [4, 1, 0][j]
            } else {
                [0, 1, 2, 3, 4, 4, 4, 4, 4, 5, 6, 7][rng.range(0, 11) as usize]
            };
            execute(
                db,
                &ctx(st, at),
                Command::PostOrder(PostOrder {
                    order_id: oid.clone(),
                    beneficiary_id: elder.clone(),
                    service_code: svc.into(),
                    description: if i == 0 {
                        "父亲一个人在家，麻烦帮忙送一份午饭，顺便看看他身体怎么样。".into()
                    } else {
                        "需要邻居帮忙，谢谢！".into()
                    },
                    urgent,
                    place_hint: format!(
                        "{}附近",
                        COMMUNITIES[boot
                            .community_ids
                            .iter()
                            .position(|x| x == cid)
                            .unwrap_or(0)]
                        .0
                    ),
                    address: None,
                    window_start: None,
                    window_end: (stage == 7).then_some(at + 3 * 3_600_000),
                    expected_minutes: [30, 45, 60, 90, 120][rng.range(0, 4) as usize],
                    volunteers_needed: 1,
                    visits: vec![],
                }),
            )
            .await?;
            orders += 1;
            // Stage: 0 open, 1 accepted, 2 in service, 3 awaiting, 4 completed (+rating), 5 cancelled, 6 disputed.
            if stage == 5 {
                execute(
                    db,
                    &ctx(st, at + 5 * MIN),
                    Command::CancelOrder {
                        order_id: oid.clone(),
                        reason: "老人家属已自行安排".into(),
                    },
                )
                .await?;
                continue;
            }
            if stage == 0 || stage == 7 {
                continue;
            }
            execute(
                db,
                &ctx(vol, at + rng.range(5, 40) * MIN),
                Command::AcceptOrder {
                    order_id: oid.clone(),
                },
            )
            .await?;
            if stage == 1 {
                continue;
            }
            let cin = at + 60 * MIN;
            execute(
                db,
                &ctx(vol, cin),
                Command::CheckIn {
                    visit_id: None,
                    order_id: oid.clone(),
                },
            )
            .await?;
            if stage == 2 {
                continue;
            }
            execute(
                db,
                &ctx(vol, cin + rng.range(25, 130) * MIN),
                Command::CheckOut {
                    order_id: oid.clone(),
                    note: None,
                    served: None,
                },
            )
            .await?;
            if stage == 3 {
                continue;
            }
            if stage == 6 {
                execute(
                    db,
                    &ctx(st, cin + 180 * MIN),
                    Command::DisputeVisit {
                        visit_id: None,
                        order_id: oid.clone(),
                        reason: "老人说志愿者只待了十分钟".into(),
                    },
                )
                .await?;
                continue;
            }
            let confirm = if i == 0 {
                Command::ConfirmVisit {
                    visit_id: None,
                    order_id: oid.clone(),
                    method: ConfirmMethod::Pin,
                    pin: Some("2468".into()),
                    confirms: None,
                }
            } else {
                Command::ConfirmVisit {
                    visit_id: None,
                    order_id: oid.clone(),
                    method: ConfirmMethod::Staff,
                    pin: None,
                    confirms: None,
                }
            };
            execute(
                db,
                &ctx(if i == 0 { vol } else { st }, cin + 150 * MIN),
                confirm,
            )
            .await?;
            let rater = if i == 0 { &xiuzhi } else { st };
            let comment = *rng.pick(&[
                "志愿者很耐心，谢谢！",
                "服务很好，老人很满意。",
                "来得很及时。",
                "态度好，下次还找他。",
            ]);
            execute(
                db,
                &ctx(rater, cin + 200 * MIN),
                Command::RateService {
                    feedback_id: new_id(),
                    order_id: oid.clone(),
                    rating: rng.range(4, 5) as i32,
                    comment: comment.into(),
                },
            )
            .await?;
        }
    }
    // The clock-driven rules: expire orders whose window passed, auto-confirm old visits.
    execute(db, &sctx(tick(MIN)), Command::Tick).await?;
    progress(4, total_steps);

    // Activities: two held (attendance credited), one upcoming.
    let mut activities = 0;
    for (k, title) in ["重阳节敬老包饺子", "防台风应急演练", "智能手机使用课堂"]
        .iter()
        .enumerate()
    {
        let aid = new_id();
        let at = tick(30 * MIN);
        execute(
            db,
            &sctx(at),
            Command::CreateActivity(CreateActivity {
                activity_id: aid.clone(),
                community_id: fuyuan.clone(),
                title: (*title).into(),
                description: "社区服务中心组织".into(),
                field_code: Some(["companionship", "emergency", "culture"][k].into()),
                starts_at: at + 2 * DAY,
                credit_minutes: 120,
                capacity: 12,
            }),
        )
        .await?;
        let attendees: Vec<String> = volunteers
            .iter()
            .filter(|(_, c)| *c == fuyuan)
            .take(8)
            .map(|(v, _)| v.clone())
            .collect();
        for v in &attendees {
            execute(
                db,
                &Ctx::new(v, &dev, tick(MIN)),
                Command::SignUpActivity {
                    activity_id: aid.clone(),
                    member_id: v.clone(),
                },
            )
            .await?;
        }
        if k < 2 {
            execute(
                db,
                &sctx(tick(DAY / 2)),
                Command::RecordAttendance {
                    activity_id: aid.clone(),
                    member_ids: attendees[..6].to_vec(),
                },
            )
            .await?;
        }
        activities += 1;
    }
    progress(5, total_steps);

    // Ledger history: Ma Jun gives an hour to... he has no family; a volunteer with family
    // gives hours to a parent; a mistaken credit reversed by staff.
    let (giver, _) = volunteers[5].clone();
    execute(
        db,
        &sctx(tick(MIN)),
        Command::LinkFamily {
            member_id: giver.clone(),
            relative_id: elders[3].0.clone(),
            relation: Relation::Parent,
        },
    )
    .await?;
    execute(
        db,
        &Ctx::new(&giver, &dev, tick(MIN)),
        Command::Gift {
            transfer_id: new_id(),
            to_member_id: elders[3].0.clone(),
            minutes: 30,
            note: "给妈妈用".into(),
        },
    )
    .await?;
    let wrong = new_id();
    execute(
        db,
        &Ctx::new(&giver, &dev, tick(MIN)),
        Command::Gift {
            transfer_id: wrong.clone(),
            to_member_id: elders[3].0.clone(),
            minutes: 15,
            note: "多点了一次".into(),
        },
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        Command::ReverseTransfer {
            transfer_id: new_id(),
            reverses_id: wrong,
            reason: "志愿者误操作重复赠送，经本人确认冲正".into(),
        },
    )
    .await?;
    execute(
        db,
        &sctx(tick(MIN)),
        Command::FileSafeguarding(FileSafeguarding {
            report_id: new_id(),
            subject_member_id: Some(elders[7].0.clone()),
            order_id: None,
            category: "neglect".into(),
            details: "邻居反映老人最近几天没有出门，电话也不接。".into(),
        }),
    )
    .await?;
    // An open urgent order from today, so the board and escalation have something to show.
    execute(
        db,
        &sctx(now_ms - 10 * MIN),
        Command::PostOrder(PostOrder {
            order_id: new_id(),
            beneficiary_id: wang.clone(),
            service_code: "typhoon_check".into(),
            description: "台风要来了，请帮忙检查门窗，送些饮用水。".into(),
            urgent: true,
            place_hint: "府苑新村12幢".into(),
            address: None,
            window_start: None,
            window_end: None,
            expected_minutes: 45,
            volunteers_needed: 2,
            visits: vec![],
        }),
    )
    .await?;
    execute(
        db,
        &sctx(now_ms - 5 * MIN),
        Command::PostOrder(PostOrder {
            order_id: new_id(),
            beneficiary_id: wang.clone(),
            service_code: "chat_visit".into(),
            description: "接下来五天每天晚上去看看老人，陪他聊聊天。".into(),
            urgent: false,
            place_hint: "府苑新村12幢".into(),
            address: None,
            window_start: Some(now_ms + 6 * 3_600_000),
            window_end: Some(now_ms + 5 * DAY + 9 * 3_600_000),
            expected_minutes: 60,
            volunteers_needed: 1,
            visits: (0..5).map(|d| now_ms + 8 * 3_600_000 + d * DAY).collect(),
        }),
    )
    .await?;
    orders += 2;
    progress(6, total_steps);
    Ok(DemoSummary {
        device_id: dev,
        admin_phone: "13900000001".into(),
        staff_phone: "13900000002".into(),
        volunteer_phone: "13700000003".into(),
        family_phone: "13700000002".into(),
        elder_phone: "13700000001".into(),
        elder_pin: "2468".into(),
        sign_in_pin: DEMO_SIGN_IN_PIN.into(),
        members,
        orders,
        activities,
        fuyuanxincun_id: fuyuan,
    })
}
