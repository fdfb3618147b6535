//! The whole first schema: places, members, catalogue, orders, activities, the ledger,
//! feedback, safeguarding, inbox, audit trail and the sync outbox.
//!
//! Conventions: every primary key is a text UUID (v7) so that rows created offline on
//! different devices never collide; every instant is `bigint` milliseconds since the Unix
//! epoch (UTC); amounts of time are `bigint` whole minutes.
use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn id(col: &'static str) -> ColumnDef {
    text(col).primary_key().take()
}

fn fk(table: &'static str, col: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{col}"))
        .from(table, col)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Restrict)
        .take()
}

fn idx(
    table: &'static str,
    name: &str,
    cols: &[&'static str],
    unique: bool,
) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(format!("ix_{table}_{name}")).table(table);
    for c in cols {
        i.col(*c);
    }
    if unique {
        i.unique();
    }
    i.take()
}

/// Tables in creation order; dropped in reverse.
const TABLES: &[&str] = &[
    "places",
    "centers",
    "center_communities",
    "programmes",
    "service_fields",
    "services",
    "members",
    "member_roles",
    "family_links",
    "volunteer_profiles",
    "orders",
    "order_visits",
    "order_volunteers",
    "visit_attendance",
    "activities",
    "activity_signups",
    "accounts",
    "transfers",
    "ledger_entries",
    "ledger_flags",
    "feedback",
    "safeguarding_reports",
    "inbox_messages",
    "audit_log",
    "outbox",
    "device_settings",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let tables: Vec<TableCreateStatement> = vec![
            Table::create()
                .table("places")
                .col(id("id"))
                .col(text_null("parent_id"))
                .col(text("level"))
                .col(text("name_zh"))
                .col(text("name_en"))
                .foreign_key(&mut fk("places", "parent_id", "places"))
                .take(),
            Table::create()
                .table("centers")
                .col(id("id"))
                .col(text("name_zh"))
                .col(text("name_en"))
                .col(text("subdistrict_id"))
                .foreign_key(&mut fk("centers", "subdistrict_id", "places"))
                .take(),
            Table::create()
                .table("center_communities")
                .col(text("center_id"))
                .col(text("community_id"))
                .primary_key(Index::create().col("center_id").col("community_id"))
                .foreign_key(&mut fk("center_communities", "center_id", "centers"))
                .foreign_key(&mut fk("center_communities", "community_id", "places"))
                .take(),
            Table::create()
                .table("programmes")
                .col(id("id"))
                .col(text("name"))
                .col(text("payer"))
                .col(integer("rounding_minutes"))
                .col(big_integer("max_per_visit"))
                .col(big_integer("max_per_day"))
                .col(big_integer("balance_cap"))
                .col(big_integer("overdraft_limit"))
                .col(integer("min_spend_age"))
                .col(text("gift_policy"))
                .col(big_integer("signup_bonus"))
                .col(integer("auto_confirm_minutes"))
                .col(integer("urgent_escalation_minutes"))
                .col(text("timezone"))
                .col(big_integer("updated_at"))
                .take(),
            Table::create()
                .table("service_fields")
                .col(text("code").primary_key())
                .col(text("name_zh"))
                .col(text("name_en"))
                .col(integer("sort"))
                .col(boolean("active"))
                .take(),
            Table::create()
                .table("services")
                .col(text("code").primary_key())
                .col(text("field_code"))
                .col(text("name_zh"))
                .col(text("name_en"))
                .col(integer("sort"))
                .col(boolean("active"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_services_field_code")
                        .from("services", "field_code")
                        .to("service_fields", "code"),
                )
                .take(),
            Table::create()
                .table("members")
                .col(id("id"))
                .col(text("name"))
                .col(text("phone").unique_key())
                .col(date("date_of_birth"))
                .col(text("home_community_id"))
                .col(text_null("address"))
                .col(boolean("hardship"))
                .col(text_null("pin_hash"))
                .col(text_null("center_id"))
                .col(boolean("active"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("members", "home_community_id", "places"))
                .foreign_key(&mut fk("members", "center_id", "centers"))
                .take(),
            Table::create()
                .table("member_roles")
                .col(text("member_id"))
                .col(text("role"))
                .primary_key(Index::create().col("member_id").col("role"))
                .foreign_key(&mut fk("member_roles", "member_id", "members"))
                .take(),
            Table::create()
                .table("family_links")
                .col(text("member_id"))
                .col(text("relative_id"))
                .col(text("relation"))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("member_id").col("relative_id"))
                .foreign_key(&mut fk("family_links", "member_id", "members"))
                .foreign_key(&mut fk("family_links", "relative_id", "members"))
                .take(),
            Table::create()
                .table("volunteer_profiles")
                .col(text("member_id").primary_key())
                .col(text("vetting"))
                .col(text("service_fields"))
                .col(text("skills"))
                .col(text("availability"))
                .col(text_null("verified_by"))
                .col(big_integer_null("verified_at"))
                .foreign_key(&mut fk("volunteer_profiles", "member_id", "members"))
                .take(),
            Table::create()
                .table("orders")
                .col(id("id"))
                .col(text("service_code"))
                .col(text("field_code"))
                .col(text("beneficiary_id"))
                .col(text("posted_by"))
                .col(text("description"))
                .col(boolean("urgent"))
                .col(text("community_id"))
                .col(text("place_hint"))
                .col(text("address"))
                .col(big_integer_null("window_start"))
                .col(big_integer_null("window_end"))
                .col(integer("expected_minutes"))
                .col(integer("volunteers_needed"))
                .col(integer("accepted_count"))
                .col(integer("visits_total"))
                .col(integer("visits_done"))
                .col(text("status"))
                .col(boolean("escalated"))
                .col(text_null("cancel_reason"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .col(big_integer_null("first_accepted_at"))
                .foreign_key(&mut fk("orders", "beneficiary_id", "members"))
                .foreign_key(&mut fk("orders", "posted_by", "members"))
                .foreign_key(&mut fk("orders", "community_id", "places"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_orders_service_code")
                        .from("orders", "service_code")
                        .to("services", "code"),
                )
                .take(),
            Table::create()
                .table("order_visits")
                .col(id("id"))
                .col(text("order_id"))
                .col(integer("visit_no"))
                .col(big_integer_null("scheduled_at"))
                .col(text("status"))
                .col(big_integer_null("completed_at"))
                .foreign_key(&mut fk("order_visits", "order_id", "orders"))
                .take(),
            Table::create()
                .table("order_volunteers")
                .col(id("id"))
                .col(text("order_id"))
                .col(text("volunteer_id"))
                .col(text("status"))
                .col(text_null("assigned_by"))
                .col(big_integer("accepted_at"))
                .col(big_integer_null("released_at"))
                .foreign_key(&mut fk("order_volunteers", "order_id", "orders"))
                .foreign_key(&mut fk("order_volunteers", "volunteer_id", "members"))
                .take(),
            Table::create()
                .table("visit_attendance")
                .col(id("id"))
                .col(text("visit_id"))
                .col(text("order_id"))
                .col(text("volunteer_id"))
                .col(text("status"))
                .col(big_integer("checked_in_at"))
                .col(big_integer_null("checked_out_at"))
                .col(big_integer_null("minutes"))
                .col(text_null("confirmed_by"))
                .col(text_null("confirm_method"))
                .col(big_integer_null("confirmed_at"))
                .col(text_null("note"))
                .foreign_key(&mut fk("visit_attendance", "visit_id", "order_visits"))
                .foreign_key(&mut fk("visit_attendance", "order_id", "orders"))
                .foreign_key(&mut fk("visit_attendance", "volunteer_id", "members"))
                .take(),
            Table::create()
                .table("activities")
                .col(id("id"))
                .col(text("community_id"))
                .col(text("title"))
                .col(text("description"))
                .col(text_null("field_code"))
                .col(big_integer("starts_at"))
                .col(big_integer("credit_minutes"))
                .col(integer("capacity"))
                .col(text("status"))
                .col(text("created_by"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("activities", "community_id", "places"))
                .take(),
            Table::create()
                .table("activity_signups")
                .col(text("activity_id"))
                .col(text("member_id"))
                .col(big_integer("signed_up_at"))
                .col(boolean("attended"))
                .primary_key(Index::create().col("activity_id").col("member_id"))
                .foreign_key(&mut fk("activity_signups", "activity_id", "activities"))
                .foreign_key(&mut fk("activity_signups", "member_id", "members"))
                .take(),
            Table::create()
                .table("accounts")
                .col(id("id"))
                .col(text("kind"))
                .col(text_null("member_id").unique_key())
                .col(text_null("community_id"))
                .col(text_null("programme_id"))
                .col(big_integer("balance"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("accounts", "member_id", "members"))
                .take(),
            Table::create()
                .table("transfers")
                .col(id("id"))
                .col(text("kind"))
                .col(text("programme_id"))
                .col(text_null("order_id"))
                .col(text_null("visit_id"))
                .col(text_null("activity_id"))
                .col(text_null("credit_key").unique_key())
                .col(text_null("reverses_id").unique_key())
                .col(text("memo"))
                .col(text_null("reason"))
                .col(text_null("approved_by"))
                .col(text("created_by"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("transfers", "reverses_id", "transfers"))
                .take(),
            Table::create()
                .table("ledger_entries")
                .col(id("id"))
                .col(text("transfer_id"))
                .col(text("account_id"))
                .col(big_integer("amount"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("ledger_entries", "transfer_id", "transfers"))
                .foreign_key(&mut fk("ledger_entries", "account_id", "accounts"))
                .take(),
            Table::create()
                .table("ledger_flags")
                .col(id("id"))
                .col(text("kind"))
                .col(text("member_id"))
                .col(text_null("order_id"))
                .col(text_null("visit_id"))
                .col(text_null("activity_id"))
                .col(big_integer("held_minutes"))
                .col(text("status"))
                .col(text("detail"))
                .col(big_integer("created_at"))
                .col(text_null("resolved_by"))
                .col(big_integer_null("resolved_at"))
                .col(text_null("transfer_id"))
                .take(),
            Table::create()
                .table("feedback")
                .col(id("id"))
                .col(text("order_id"))
                .col(text("author_id"))
                .col(text_null("on_behalf_of"))
                .col(text("author_role"))
                .col(integer_null("rating"))
                .col(text("comment"))
                .col(text_null("staff_response"))
                .col(text_null("responded_by"))
                .col(big_integer_null("responded_at"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("feedback", "order_id", "orders"))
                .take(),
            Table::create()
                .table("safeguarding_reports")
                .col(id("id"))
                .col(text("reporter_id"))
                .col(text_null("subject_member_id"))
                .col(text_null("order_id"))
                .col(text("community_id"))
                .col(text("category"))
                .col(text("details"))
                .col(text("status"))
                .col(text_null("handled_by"))
                .col(text_null("resolution"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .take(),
            Table::create()
                .table("inbox_messages")
                .col(id("id"))
                .col(text("member_id"))
                .col(text("kind"))
                .col(text("params"))
                .col(big_integer_null("read_at"))
                .col(big_integer("created_at"))
                .take(),
            Table::create()
                .table("audit_log")
                .col(id("id"))
                .col(big_integer("at"))
                .col(text("actor_id"))
                .col(text_null("on_behalf_of"))
                .col(text("device_id"))
                .col(text("action"))
                .col(text("entity"))
                .col(text("entity_id"))
                .col(text("detail"))
                .take(),
            Table::create()
                .table("outbox")
                .col(id("id"))
                .col(text("device_id"))
                .col(big_integer("seq"))
                .col(text("name"))
                .col(text("args"))
                .col(text("hlc"))
                .col(integer("schema_version"))
                .col(text("actor_id"))
                .col(text("status"))
                .col(big_integer("created_at"))
                .take(),
            Table::create()
                .table("device_settings")
                .col(text("key").primary_key())
                .col(text("value"))
                .take(),
        ];
        for t in tables {
            m.create_table(t).await?;
        }
        for i in [
            idx("places", "parent", &["parent_id"], false),
            idx("members", "community", &["home_community_id"], false),
            idx("family_links", "relative", &["relative_id"], false),
            idx("orders", "beneficiary", &["beneficiary_id"], false),
            idx("orders", "status", &["status", "updated_at"], false),
            idx("order_visits", "order", &["order_id", "visit_no"], true),
            idx(
                "order_volunteers",
                "order_volunteer",
                &["order_id", "volunteer_id"],
                true,
            ),
            idx(
                "order_volunteers",
                "volunteer",
                &["volunteer_id", "status"],
                false,
            ),
            idx(
                "visit_attendance",
                "visit_volunteer",
                &["visit_id", "volunteer_id"],
                true,
            ),
            idx("visit_attendance", "order", &["order_id"], false),
            idx(
                "activities",
                "community",
                &["community_id", "starts_at"],
                false,
            ),
            idx("accounts", "community", &["kind", "community_id"], false),
            idx("transfers", "order", &["order_id"], false),
            idx(
                "ledger_entries",
                "account",
                &["account_id", "created_at", "id", "amount"],
                false,
            ),
            idx(
                "ledger_entries",
                "transfer",
                &["transfer_id", "amount"],
                false,
            ),
            idx("ledger_flags", "status", &["status", "created_at"], false),
            idx("feedback", "order", &["order_id"], false),
            idx(
                "inbox_messages",
                "member",
                &["member_id", "created_at"],
                false,
            ),
            idx("audit_log", "entity", &["entity", "entity_id"], false),
            idx("audit_log", "at", &["at"], false),
            idx("outbox", "device_seq", &["device_id", "seq"], true),
        ] {
            m.create_index(i).await?;
        }
        // The open-order board reads only orders that still need volunteers: partial indexes in
        // the board's order (urgent first, oldest first), the same SQL on both databases.
        let db = m.get_connection();
        for (name, cols) in [
            ("board", "community_id"),
            ("field_board", "community_id, field_code"),
        ] {
            db.execute_unprepared(&format!(
                "CREATE INDEX ix_orders_{name} ON orders ({cols}, urgent DESC, created_at ASC) \
                 WHERE status IN ('open', 'accepted') AND accepted_count < volunteers_needed"
            ))
            .await?;
        }
        // The ledger is append-only: no UPDATE or DELETE of an entry or a transfer, whatever
        // the code path. Corrections are reversing transfers.
        match m.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION timebank_ledger_append_only() RETURNS trigger AS $$ \
                     BEGIN RAISE EXCEPTION 'ledger_append_only: % on % is refused; correct by a reversing transfer', TG_OP, TG_TABLE_NAME; END; \
                     $$ LANGUAGE plpgsql",
                )
                .await?;
                for t in ["ledger_entries", "transfers"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} \
                         FOR EACH STATEMENT EXECUTE FUNCTION timebank_ledger_append_only()"
                    ))
                    .await?;
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} \
                         FOR EACH ROW EXECUTE FUNCTION timebank_ledger_append_only()"
                    ))
                    .await?;
                }
            }
            DbBackend::Sqlite => {
                for t in ["ledger_entries", "transfers"] {
                    for op in ["UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            // The one exception on a device: the sync client replacing a
                            // pending entry by the city server's final one, inside its apply
                            // transaction (marked by the `sync_applying` setting).
                            "CREATE TRIGGER {t}_no_{o} BEFORE {op} ON {t} \
                             WHEN NOT EXISTS (SELECT 1 FROM device_settings WHERE key = 'sync_applying') BEGIN \
                             SELECT RAISE(ABORT, 'ledger_append_only: {op} on {t} is refused; correct by a reversing transfer'); END",
                            o = op.to_lowercase()
                        ))
                        .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        if m.get_database_backend() == DbBackend::Postgres {
            for t in ["ledger_entries", "transfers"] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {t}_no_truncate ON {t}"))
                    .await?;
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {t}_append_only ON {t}"))
                    .await?;
            }
            db.execute_unprepared("DROP FUNCTION IF EXISTS timebank_ledger_append_only()")
                .await?;
        }
        for t in TABLES.iter().rev() {
            m.drop_table(Table::drop().table(*t).take()).await?;
        }
        Ok(())
    }
}
