//! The assignment service's first schema: tenants, people, groups, external issue
//! links, the audit trail, the notification log and idempotency records.
//!
//! Written with the schema builder so the same migration runs on SQLite and
//! PostgreSQL.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(
    from_table: &'static str,
    from_col: &'static str,
    to_table: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{from_col}"))
        .from(from_table, from_col)
        .to(to_table, "id")
        .on_delete(on_delete)
        .to_owned()
}

fn index(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("ix_{table}_{name}")).table(table);
    for col in cols {
        stmt.col(*col);
    }
    stmt.to_owned()
}

fn unique(table: &'static str, name: &str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = index(table, name, cols);
    stmt.unique();
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("organizations")
                    .col(big_pk_auto("id"))
                    .col(string_uniq("slug"))
                    .col(string("name"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("projects")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string("slug"))
                    .col(string("name"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk(
                        "projects",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique("projects", "org_slug", &["organization_id", "slug"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(big_pk_auto("id"))
                    .col(string("display_name"))
                    .col(boolean("active"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("user_emails")
                    .col(big_pk_auto("id"))
                    .col(big_integer("user_id"))
                    .col(string("email"))
                    // Lowercased: matching against Jira is case-insensitive.
                    .col(string("email_normalized"))
                    .col(boolean("verified"))
                    .foreign_key(&mut fk(
                        "user_emails",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "user_emails",
                "user_email",
                &["user_id", "email_normalized"],
            ))
            .await?;
        manager
            .create_index(index("user_emails", "email", &["email_normalized"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("project_members")
                    .col(big_integer("project_id"))
                    .col(big_integer("user_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("project_id").col("user_id"))
                    .foreign_key(&mut fk(
                        "project_members",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "project_members",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("project_members", "user", &["user_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("groups")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(big_integer("project_id"))
                    .col(text("title"))
                    .col(string("status"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk(
                        "groups",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("groups", "project", &["project_id", "id"]))
            .await?;
        manager
            .create_index(index("groups", "organization", &["organization_id", "id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("group_assignees")
                    .col(big_integer("group_id").primary_key())
                    .col(big_integer("user_id"))
                    .col(timestamp_with_time_zone("assigned_at"))
                    .foreign_key(&mut fk(
                        "group_assignees",
                        "group_id",
                        "groups",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "group_assignees",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("group_assignees", "user", &["user_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("installations")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string("integration_id"))
                    .col(boolean("sync_reverse_assignment"))
                    .col(boolean("sync_status_reverse"))
                    .col(boolean("sync_forward_assignment"))
                    .col(boolean("sync_status_forward"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk(
                        "installations",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "installations",
                "org_integration",
                &["organization_id", "integration_id"],
            ))
            .await?;
        manager
            .create_index(index("installations", "integration", &["integration_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("external_issues")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(string("integration_id"))
                    .col(string("issue_key"))
                    .col(string_null("jira_issue_id"))
                    .col(text("title"))
                    .col(text("url"))
                    .col(timestamp_with_time_zone_null("assignee_watermark"))
                    .col(timestamp_with_time_zone_null("status_watermark"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk(
                        "external_issues",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "external_issues",
                "org_key",
                &["organization_id", "integration_id", "issue_key"],
            ))
            .await?;
        // NULL ids never collide, so records without a Jira id are allowed.
        manager
            .create_index(unique(
                "external_issues",
                "org_jira_id",
                &["organization_id", "integration_id", "jira_issue_id"],
            ))
            .await?;
        manager
            .create_index(index(
                "external_issues",
                "key",
                &["integration_id", "issue_key"],
            ))
            .await?;
        manager
            .create_index(index(
                "external_issues",
                "jira_id",
                &["integration_id", "jira_issue_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("group_links")
                    .col(big_pk_auto("id"))
                    .col(big_integer("external_issue_id"))
                    .col(big_integer("group_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk(
                        "group_links",
                        "external_issue_id",
                        "external_issues",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "group_links",
                        "group_id",
                        "groups",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "group_links",
                "issue_group",
                &["external_issue_id", "group_id"],
            ))
            .await?;
        manager
            .create_index(index("group_links", "group", &["group_id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("activities")
                    .col(big_pk_auto("id"))
                    .col(big_integer("organization_id"))
                    .col(big_integer("group_id"))
                    .col(string("kind"))
                    .col(big_integer_null("user_id"))
                    .col(big_integer_null("previous_user_id"))
                    .col(string_null("source_integration_id"))
                    .col(string_null("external_issue_key"))
                    .col(string_null("request_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk(
                        "activities",
                        "group_id",
                        "groups",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("activities", "group", &["group_id", "id"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("notification_threads")
                    .col(big_integer("recipient_user_id"))
                    .col(big_integer("group_id"))
                    .col(string("message_key"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("recipient_user_id").col("group_id"))
                    .to_owned(),
            )
            .await?;

        // Sequences are assigned from `notification_log`, not by the database, so
        // that sequence order equals commit order (see the stream module).
        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(big_integer("sequence").primary_key())
                    .col(big_integer("recipient_user_id"))
                    .col(big_integer("organization_id"))
                    .col(big_integer("group_id"))
                    .col(string("external_issue_key"))
                    .col(string("integration_id"))
                    .col(string("kind"))
                    .col(text("message"))
                    .col(string("message_key"))
                    .col(boolean("is_update"))
                    .col(big_integer("activity_id"))
                    .col(string("traceparent"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("notifications", "created", &["created_at"]))
            .await?;

        // One row (id = 1): the last sequence handed out and the last one pruned by
        // retention. Updating it serialises notification writers until commit.
        manager
            .create_table(
                Table::create()
                    .table("notification_log")
                    .col(integer("id").primary_key())
                    .col(big_integer("last_sequence"))
                    .col(big_integer("pruned_through"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("notification_log")
                    .columns(["id", "last_sequence", "pruned_through"])
                    .values_panic([1.into(), 0.into(), 0.into()])
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("subscribers")
                    .col(string("name").primary_key())
                    .col(big_integer("acknowledged_sequence"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        service_runtime::idempotency::create_table(manager).await?;

        Ok(())
    }
}
