//! Who the sign-in list of a shared workstation shows (`session::choices`): the people who use
//! the workstation (staff, volunteers, family) by name; a resident only to someone who types
//! their whole name or their phone number, never to a passer-by.
#![allow(clippy::unwrap_used)]
#[macro_use]
mod common;
use common::*;
use timebank_core::service::command::Command;
use timebank_core::service::members::hash_pin;
use timebank_core::session::choices;
use timebank_core::sql;

both_backends!(residents_are_found_for_sign_in_only_by_their_whole_name_or_phone_number);

async fn phone(t: &TestDb, id: &str) -> String {
    sql::one(
        &t.db,
        "SELECT phone FROM members WHERE id = ?",
        vec![id.into()],
    )
    .await
    .unwrap()
    .unwrap()
    .try_get("", "phone")
    .unwrap()
}

async fn names(t: &TestDb, query: &str) -> Vec<String> {
    choices(&t.db, query)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

async fn residents_are_found_for_sign_in_only_by_their_whole_name_or_phone_number(t: &TestDb) {
    let (town, cast) = cast(&t.db, Default::default()).await;
    // 王德明 (a resident) has his PIN from the cast; 赵小明 (a resident) gets one too, as do
    // the staff member, the volunteer 马军 and 王秀芝 (family). 刘海燕 has none.
    for who in [&cast.zhao, &cast.staff, &cast.majun, &cast.xiuzhi] {
        town.ok(
            &t.db,
            &town.admin,
            SETUP_AT,
            Command::SetPin {
                member_id: who.clone(),
                pin_hash: hash_pin("1357").unwrap(),
            },
        )
        .await;
    }

    // What anyone at the workstation sees: the people who work there, no resident.
    assert_eq!(names(t, "").await, ["李红", "王秀芝", "马军"]);
    // Part of a name finds no resident either.
    assert_eq!(names(t, "王").await, ["王秀芝"]);
    assert!(names(t, "德明").await.is_empty());
    assert!(names(t, "小明").await.is_empty());
    // Nor does a pattern of SQL's LIKE.
    assert_eq!(names(t, "%").await, ["李红", "王秀芝", "马军"]);
    assert_eq!(names(t, "王__").await, ["王秀芝"]);

    // A resident's whole name, or phone number, finds them, with their community and roles.
    let wang = choices(&t.db, " 王德明 ").await.unwrap();
    assert_eq!(wang.len(), 1);
    assert_eq!(
        (
            wang[0].id.as_str(),
            wang[0].community.as_str(),
            wang[0].roles.clone()
        ),
        (cast.wang.as_str(), "府苑新村", vec!["resident".to_owned()])
    );
    // By the number alone, only the surname shows: a number does not tell a name.
    assert_eq!(names(t, &phone(t, &cast.zhao).await).await, ["赵**"]);
    let by_phone = choices(&t.db, &phone(t, &cast.wang).await).await.unwrap();
    assert_eq!(
        (by_phone[0].id.as_str(), by_phone[0].name.as_str()),
        (cast.wang.as_str(), "王**")
    );
    // A phone number finds anyone with a PIN; nobody without one.
    assert_eq!(names(t, &phone(t, &cast.majun).await).await, ["马军"]);
    assert!(names(t, &phone(t, &cast.liu).await).await.is_empty());
    assert!(names(t, "刘海燕").await.is_empty());
}
