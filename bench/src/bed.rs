//! The test bed: the two services and the Jira simulator as processes on fresh
//! databases, and a tenant set up through the public API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use hmac::{Hmac, Mac as _};
use proto::assignment::v1 as assignment;
use proto::tracker::v1 as tracker;
use sea_orm::ConnectionTrait as _;
use tonic::transport::{Channel, Endpoint};

use crate::procs::{Process, Usage, free_addr};

/// The integration every scenario uses.
pub const INTEGRATION: &str = "bench-jira";
/// Its webhook secret.
pub const SECRET: &str = "bench-webhook-secret";

/// Which database the services run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum DbKind {
    /// A SQLite file per service.
    Sqlite,
    /// A fresh PostgreSQL database per service.
    Postgres,
}

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct BedOptions {
    /// Where the release binaries are.
    pub bin_dir: PathBuf,
    /// The database kind.
    pub db: DbKind,
    /// The PostgreSQL server (admin database URL).
    pub postgres_url: String,
    /// Where logs and SQLite files go.
    pub work_dir: PathBuf,
}

/// A running bed.
#[derive(Debug)]
pub struct Bed {
    /// The assignment service.
    pub assignment: Process,
    /// The tracker (until a scenario stops it to run replicas of its own).
    pub tracker: Option<Process>,
    jira: Process,
    /// Assignment gRPC address.
    pub assignment_grpc: SocketAddr,
    /// Tracker gRPC address.
    pub tracker_grpc: SocketAddr,
    /// Tracker HTTP address (webhooks).
    pub tracker_http: SocketAddr,
    /// The simulator's base URL.
    pub jira_url: String,
    /// The tracker's database URL, for more replicas.
    pub tracker_db: String,
    /// The assignment service's database URL.
    pub assignment_db: String,
    databases: Vec<String>,
    options: BedOptions,
}

/// A lazily connected channel.
pub fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Creates (or re-creates) database `name`; returns its URL.
pub async fn create_database(admin: &str, name: &str) -> anyhow::Result<String> {
    let conn =
        sea_orm::Database::connect(service_runtime::database::connect_options(admin)).await?;
    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    conn.close().await?;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// The bytes a database holds: SQLite's pages in use (free pages left by
/// deletes not counted; the WAL's content included), PostgreSQL's
/// `pg_database_size`.
pub async fn database_bytes(url: &str) -> anyhow::Result<u64> {
    use sea_orm::Statement;
    let conn = sea_orm::Database::connect(service_runtime::database::connect_options(url)).await?;
    let backend = conn.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => "SELECT pg_database_size(current_database()) AS n",
        _ => {
            "SELECT (p.page_count - f.freelist_count) * s.page_size AS n \
             FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s"
        }
    };
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .context("a size")?;
    let n: i64 = row.try_get("", "n")?;
    conn.close().await?;
    Ok(u64::try_from(n)?)
}

/// Runs a plain `VACUUM` over the database at `url` on PostgreSQL, as its
/// autovacuum would within its nap (60 s by default), so the space of pruned
/// rows is free for the next writes; a no-op on SQLite, which reuses freed
/// pages at once.
pub async fn vacuum(url: &str) -> anyhow::Result<()> {
    let conn = sea_orm::Database::connect(service_runtime::database::connect_options(url)).await?;
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        conn.execute_unprepared("VACUUM").await?;
    }
    conn.close().await?;
    Ok(())
}

/// Drops database `name`.
pub async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let conn =
        sea_orm::Database::connect(service_runtime::database::connect_options(admin)).await?;
    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    conn.close().await?;
    Ok(())
}

/// Flags added to a bed's services' defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtraFlags<'a> {
    /// For the assignment service.
    pub assignment: &'a [&'a str],
    /// For the tracker.
    pub tracker: &'a [&'a str],
}

impl Bed {
    /// Starts everything; `label` names this bed's logs and databases.
    pub async fn start(
        options: &BedOptions,
        label: &str,
        extra_assignment: &[&str],
    ) -> anyhow::Result<Self> {
        let extra = ExtraFlags {
            assignment: extra_assignment,
            tracker: &[],
        };
        Self::start_with(options, label, extra).await
    }

    /// Starts everything with `extra` flags; `label` names this bed's logs and
    /// databases.
    pub async fn start_with(
        options: &BedOptions,
        label: &str,
        extra: ExtraFlags<'_>,
    ) -> anyhow::Result<Self> {
        let dir = options.work_dir.join(label);
        std::fs::create_dir_all(&dir)?;
        let mut databases = Vec::new();
        let (assignment_db, tracker_db) = match options.db {
            DbKind::Sqlite => (
                format!("sqlite://{}?mode=rwc", dir.join("assignment.db").display()),
                format!("sqlite://{}?mode=rwc", dir.join("tracker.db").display()),
            ),
            DbKind::Postgres => {
                let a = format!("bench_{label}_assignment").replace('-', "_");
                let t = format!("bench_{label}_tracker").replace('-', "_");
                let urls = (
                    create_database(&options.postgres_url, &a).await?,
                    create_database(&options.postgres_url, &t).await?,
                );
                databases = vec![a, t];
                urls
            }
        };
        let jira_addr = free_addr()?;
        let jira = Process::spawn(
            "jira-sim",
            &options.bin_dir.join("jira-sim"),
            &["--addr".into(), jira_addr.to_string()],
            &dir.join("jira.log"),
            None,
        )
        .await?;
        let (assignment_grpc, assignment_http) = (free_addr()?, free_addr()?);
        let mut args: Vec<String> = vec![
            "--grpc-addr".into(),
            assignment_grpc.to_string(),
            "--http-addr".into(),
            assignment_http.to_string(),
            "--database-url".into(),
            assignment_db.clone(),
            "--max-in-flight".into(),
            "100000".into(),
            // The idle scenario holds 10,000 streams, 100 per connection.
            "--max-streams".into(),
            "20000".into(),
            "--max-streams-per-connection".into(),
            "1000".into(),
        ];
        args.extend(extra.assignment.iter().map(|s| (*s).to_owned()));
        let assignment = Process::spawn(
            "assignment-service",
            &options.bin_dir.join("assignment-service"),
            &args,
            &dir.join("assignment.log"),
            Some(format!("http://{assignment_http}/healthz")),
        )
        .await?;
        let tracker = TrackerProcess::spawn(
            options,
            &dir.join("tracker.log"),
            &tracker_db,
            &format!("http://{assignment_grpc}"),
            extra.tracker,
        )
        .await?;
        let (tracker, tracker_grpc, tracker_http) = (tracker.process, tracker.grpc, tracker.http);
        Ok(Self {
            assignment,
            tracker: Some(tracker),
            jira,
            assignment_grpc,
            tracker_grpc,
            tracker_http,
            jira_url: format!("http://{jira_addr}"),
            tracker_db,
            assignment_db,
            databases,
            options: options.clone(),
        })
    }

    /// Another tracker replica on the bed's database, calling the assignment
    /// service at `assignment_url`, with `extra` flags; `label` names its log.
    ///
    /// # Errors
    /// When it does not start.
    pub async fn tracker_replica(
        &self,
        label: &str,
        assignment_url: &str,
        extra: &[&str],
    ) -> anyhow::Result<TrackerProcess> {
        TrackerProcess::spawn(
            &self.options,
            &self.options.work_dir.join(format!("{label}.log")),
            &self.tracker_db,
            assignment_url,
            extra,
        )
        .await
    }

    /// CPU and memory of (assignment, tracker).
    pub fn usage(&self) -> (Usage, Usage) {
        (
            self.assignment.usage(),
            self.tracker
                .as_ref()
                .map(Process::usage)
                .unwrap_or_default(),
        )
    }

    /// Stops everything and drops the PostgreSQL databases.
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Some(tracker) = self.tracker {
            tracker.stop().await;
        }
        self.assignment.stop().await;
        self.jira.stop().await;
        for name in &self.databases {
            drop_database(&self.options.postgres_url, name).await?;
        }
        Ok(())
    }
}

/// A tracker process and its addresses.
#[derive(Debug)]
pub struct TrackerProcess {
    /// The process.
    pub process: Process,
    /// Its gRPC address.
    pub grpc: SocketAddr,
    /// Its HTTP address (webhooks).
    pub http: SocketAddr,
}

impl TrackerProcess {
    async fn spawn(
        options: &BedOptions,
        log: &std::path::Path,
        database_url: &str,
        assignment_url: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let (grpc, http) = (free_addr()?, free_addr()?);
        let mut args: Vec<String> = [
            "--grpc-addr",
            &grpc.to_string(),
            "--http-addr",
            &http.to_string(),
            "--database-url",
            database_url,
            "--assignment-url",
            assignment_url,
            "--webhook-rate",
            "1000000",
            "--webhook-burst",
            "1000000",
            "--webhook-max-in-flight",
            "4096",
            "--max-in-flight",
            "100000",
            // The Jira simulator listens on loopback.
            "--jira-allow-loopback",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let process = Process::spawn(
            "tracker-service",
            &options.bin_dir.join("tracker-service"),
            &args,
            log,
            Some(format!("http://{http}/healthz")),
        )
        .await?;
        Ok(Self {
            process,
            grpc,
            http,
        })
    }
}

/// A tenant: `issues` Jira issues, each linked to its own group (or all to one
/// issue for fan-out), and `users` users who may be assigned.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The (first) organization.
    pub org: i64,
    /// Issues linked (keys `issue(0..issues)`).
    pub issues: usize,
    /// Integrations the issues are spread over (see [`Shape`]).
    pub integrations: usize,
    /// Group ids: issue `i`'s are `groups[i * per_issue .. (i + 1) * per_issue]`
    /// (one per issue in most scenarios, so indexed by issue).
    pub groups: Vec<i64>,
    /// User ids, by index (e-mail `u{i}@bench.example`).
    pub users: Vec<i64>,
}

/// The e-mail of user `i`.
pub fn email(i: usize) -> String {
    format!("u{i}@bench.example")
}

/// The key and Jira id of issue `i`.
pub fn issue(i: usize) -> (String, String) {
    (format!("BENCH-{}", i + 1), format!("{}", 50_000 + i))
}

async fn chunked<T, F, Fut>(count: usize, make: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut out = Vec::with_capacity(count);
    let mut start = 0;
    while start < count {
        let end = (start + 32).min(count);
        let batch = futures_util::future::join_all((start..end).map(&make)).await;
        for item in batch {
            out.push(item?);
        }
        start = end;
    }
    Ok(out)
}

/// What a tenant holds.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Issues linked (keys `issue(0..issues)`), in every organization.
    pub issues: usize,
    /// Groups each issue is linked to, in each organization.
    pub groups_per_issue: usize,
    /// Users, with access to every organization's project.
    pub users: usize,
    /// Jira integrations, each registered with the tracker and installed in
    /// every organization; issue `i` belongs to integration `i % integrations`.
    pub integrations: usize,
    /// Organizations, each linking every issue to groups of its own.
    pub organizations: usize,
}

/// The id of integration `k` (the first is [`INTEGRATION`]).
pub fn integration(k: usize) -> String {
    if k == 0 {
        INTEGRATION.to_owned()
    } else {
        format!("{INTEGRATION}-{k}")
    }
}

impl Tenant {
    /// Creates the tenant: `issues` issues, each linked to `groups_per_issue`
    /// groups of its own, and `users` users with access, in one organization
    /// with one integration.
    pub async fn create(
        bed: &Bed,
        issues: usize,
        groups_per_issue: usize,
        users: usize,
    ) -> anyhow::Result<Self> {
        Self::create_shaped(
            bed,
            Shape {
                issues,
                groups_per_issue,
                users,
                integrations: 1,
                organizations: 1,
            },
        )
        .await
    }

    /// Creates a tenant of `shape`.
    pub async fn create_shaped(bed: &Bed, shape: Shape) -> anyhow::Result<Self> {
        let channel = channel(bed.assignment_grpc)?;
        let directory =
            assignment::directory_service_client::DirectoryServiceClient::new(channel.clone());
        let groups_client =
            assignment::group_service_client::GroupServiceClient::new(channel.clone());
        let links =
            assignment::external_issue_service_client::ExternalIssueServiceClient::new(channel);
        let user_ids = chunked(shape.users, |i| {
            let mut directory = directory.clone();
            async move {
                anyhow::Ok(
                    directory
                        .create_user(assignment::CreateUserRequest {
                            display_name: format!("User {i}"),
                            emails: vec![assignment::UserEmail {
                                email: email(i),
                                verified: true,
                            }],
                            ..Default::default()
                        })
                        .await?
                        .into_inner()
                        .user
                        .context("user")?
                        .id,
                )
            }
        })
        .await?;
        let mut orgs = Vec::with_capacity(shape.organizations);
        let mut all_groups = Vec::new();
        for o in 0..shape.organizations {
            let slug = if o == 0 {
                "bench".to_owned()
            } else {
                format!("bench-{o}")
            };
            let org = directory
                .clone()
                .create_organization(assignment::CreateOrganizationRequest {
                    slug,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .organization
                .context("org")?
                .id;
            orgs.push(org);
            let project = directory
                .clone()
                .create_project(assignment::CreateProjectRequest {
                    organization_id: org,
                    slug: "web".into(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .project
                .context("project")?
                .id;
            chunked(shape.integrations, |k| {
                let mut directory = directory.clone();
                async move {
                    directory
                        .install_integration(assignment::InstallIntegrationRequest {
                            organization_id: org,
                            integration_id: integration(k),
                            sync_settings: Some(assignment::SyncSettings {
                                sync_reverse_assignment: true,
                                sync_status_reverse: true,
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .await?;
                    anyhow::Ok(())
                }
            })
            .await?;
            chunked(user_ids.len(), |i| {
                let mut directory = directory.clone();
                let user_id = user_ids[i];
                async move {
                    directory
                        .grant_project_access(assignment::GrantProjectAccessRequest {
                            project_id: project,
                            user_id,
                            ..Default::default()
                        })
                        .await?;
                    anyhow::Ok(())
                }
            })
            .await?;
            let group_ids = chunked(shape.issues * shape.groups_per_issue, |i| {
                let mut groups = groups_client.clone();
                async move {
                    anyhow::Ok(
                        groups
                            .create_group(assignment::CreateGroupRequest {
                                project_id: project,
                                title: format!("TypeError in handler {i}"),
                                ..Default::default()
                            })
                            .await?
                            .into_inner()
                            .group
                            .context("group")?
                            .id,
                    )
                }
            })
            .await?;
            let group_chunks: Vec<Vec<i64>> = group_ids
                .chunks(shape.groups_per_issue)
                .map(<[i64]>::to_vec)
                .collect();
            chunked(shape.issues, |i| {
                let mut links = links.clone();
                let group_ids = group_chunks[i].clone();
                async move {
                    let (key, id) = issue(i);
                    links
                        .link_external_issue(assignment::LinkExternalIssueRequest {
                            organization_id: org,
                            issue: Some(assignment::ExternalIssueRef {
                                integration_id: integration(i % shape.integrations),
                                key,
                                jira_issue_id: id,
                            }),
                            group_ids,
                            ..Default::default()
                        })
                        .await?;
                    anyhow::Ok(())
                }
            })
            .await?;
            all_groups.extend(group_ids);
        }
        let tracker = tracker::tracker_service_client::TrackerServiceClient::new(self::channel(
            bed.tracker_grpc,
        )?);
        chunked(shape.integrations, |k| {
            let mut tracker = tracker.clone();
            let base_url = bed.jira_url.clone();
            async move {
                tracker
                    .create_integration(tracker::CreateIntegrationRequest {
                        integration_id: integration(k),
                        base_url,
                        credentials: Some(tracker::Credentials {
                            credential: Some(
                                tracker::credentials::Credential::PersonalAccessToken(
                                    tracker::PersonalAccessTokenCredential {
                                        token: "bench-token-0123456789".into(),
                                    },
                                ),
                            ),
                        }),
                        webhook_secret: SECRET.into(),
                        ..Default::default()
                    })
                    .await?;
                anyhow::Ok(())
            }
        })
        .await?;
        Ok(Self {
            org: orgs[0],
            issues: shape.issues,
            integrations: shape.integrations,
            groups: all_groups,
            users: user_ids,
        })
    }

    /// Turns outbound assignment sync on, and gives the simulator the
    /// tenant's Jira issues and users (account `acct-{i}`, the same address).
    pub async fn enable_outbound(&self, bed: &Bed, issues: usize) -> anyhow::Result<()> {
        let users: Vec<serde_json::Value> = (0..self.users.len())
            .map(|i| serde_json::json!({ "account_id": format!("acct-{i}"), "email": email(i) }))
            .collect();
        let issues: Vec<serde_json::Value> = (0..issues)
            .map(|i| {
                let (key, id) = issue(i);
                serde_json::json!({ "key": key, "id": id, "project_id": "10000" })
            })
            .collect();
        reqwest::Client::new()
            .post(format!("{}/_sim/seed", bed.jira_url))
            .json(&serde_json::json!({ "users": users, "issues": issues }))
            .send()
            .await?
            .error_for_status()?;
        assignment::directory_service_client::DirectoryServiceClient::new(channel(
            bed.assignment_grpc,
        )?)
        .update_installation(assignment::UpdateInstallationRequest {
            organization_id: self.org,
            integration_id: INTEGRATION.into(),
            sync_settings: Some(assignment::SyncSettings {
                sync_reverse_assignment: true,
                sync_status_reverse: true,
                sync_forward_assignment: true,
                sync_status_forward: false,
            }),
            request_id: String::new(),
        })
        .await?;
        Ok(())
    }
}

/// A signed `jira:issue_updated` assignee webhook: issue `i` assigned to user
/// `user` at provider time `round` seconds after a fixed epoch.
/// The user issue `issue` is assigned in round `round`: it alternates between
/// two users, so every change is effective, produces exactly one "assigned"
/// notification, and tells no one else. (Cycling through all users made every
/// new assignee a participant of the group, and each later change told all of
/// them: the work per change grew with the length of the run.)
pub fn assignee(issue: usize, round: usize, users: usize) -> usize {
    (issue + round % 2) % users.max(2)
}

pub fn assignee_webhook(i: usize, user: usize, round: usize) -> (Vec<u8>, String) {
    let (key, id) = issue(i);
    let updated =
        chrono::DateTime::from_timestamp(1_700_000_000 + i64::try_from(round).unwrap_or(0), 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S.000+0000");
    let body = format!(
        r#"{{"webhookEvent":"jira:issue_updated","changelog":{{"id":"{round}","items":[{{"field":"assignee","fieldtype":"jira","from":null,"to":"acct"}}]}},"issue":{{"id":"{id}","key":"{key}","fields":{{"assignee":{{"emailAddress":"{}","accountId":"acct-{user}"}},"updated":"{updated}"}}}}}}"#,
        email(user)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("HMAC key");
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    (body.into_bytes(), signature)
}
