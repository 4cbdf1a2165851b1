//! Workflows and their versions. The store keeps each version's spec as JSON; checking
//! and compiling it is the core's job.

use crate::{Result, Store, in_write_tx, on_pool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRecord {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    /// The account's built-in text back setting, kept as a preset workflow.
    pub builtin: bool,
    pub active: bool,
    pub version: i64,
    /// The spec of `version`, as JSON.
    pub spec: String,
}

/// A workflow with its current version's spec, from a row with the columns `id`,
/// `account_id`, `name`, `builtin`, `active`, `current_version` and `spec`.
pub(crate) fn workflow_from_row(r: &crate::sql::Row) -> crate::Result<WorkflowRecord> {
    Ok(WorkflowRecord {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        name: r.try_get("name")?,
        builtin: r.try_get("builtin")?,
        active: r.try_get("active")?,
        version: r.try_get("current_version")?,
        spec: r.try_get("spec")?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowChange {
    Created,
    /// A new version was added (the spec changed), and/or the active flag changed.
    Updated {
        version: i64,
        spec_changed: bool,
        active_changed: bool,
    },
    Unchanged,
}

/// One saved version of a workflow, for its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowVersion {
    pub version: i64,
    pub spec: String,
    pub created_at_ms: i64,
    /// `textback apply`, `API`, or the team member's email; `None` for old versions.
    pub saved_by: Option<String>,
}

impl Store {
    /// Creates the workflow, or updates the one with the same name in the account: a changed
    /// spec becomes a new version (runs under way keep theirs).
    pub async fn save_workflow(
        &self,
        account_id: i64,
        name: &str,
        builtin: bool,
        active: bool,
        spec_json: &str,
        now_ms: i64,
    ) -> Result<WorkflowChange> {
        self.save_workflow_by(account_id, name, builtin, active, spec_json, now_ms, None)
            .await
    }

    /// `save_workflow`, recording who saved a new version.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_workflow_by(
        &self,
        account_id: i64,
        name: &str,
        builtin: bool,
        active: bool,
        spec_json: &str,
        now_ms: i64,
        saved_by: Option<&str>,
    ) -> Result<WorkflowChange> {
        let change = in_write_tx!(self, tx => {
            let select = format!(
                "SELECT w.id, w.active, w.current_version, v.spec FROM workflows w \
                 JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version \
                 WHERE w.account_id = $1 AND w.name = $2{}",
                tx.for_update()
            );
            let existing = crate::sql::query(select)
                .bind(account_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            match existing {
                None => {
                    let id: i64 = crate::sql::query_scalar(
                        "INSERT INTO workflows (account_id, name, builtin, active, current_version, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING id",
                    )
                    .bind(account_id)
                    .bind(name)
                    .bind(builtin)
                    .bind(active)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await?;
                    crate::sql::query("INSERT INTO workflow_versions (workflow_id, version, spec, created_at, saved_by) VALUES ($1, 1, $2, $3, $4)")
                        .bind(id)
                        .bind(spec_json)
                        .bind(now_ms)
                        .bind(saved_by)
                        .execute(&mut *tx)
                        .await?;
                    WorkflowChange::Created
                }
                Some(row) => {
                    let id: i64 = row.try_get("id")?;
                    let was_active: bool = row.try_get("active")?;
                    let mut version: i64 = row.try_get("current_version")?;
                    let old_spec: String = row.try_get("spec")?;
                    let spec_changed = old_spec != spec_json;
                    if spec_changed {
                        version += 1;
                        crate::sql::query("INSERT INTO workflow_versions (workflow_id, version, spec, created_at, saved_by) VALUES ($1, $2, $3, $4, $5)")
                            .bind(id)
                            .bind(version)
                            .bind(spec_json)
                            .bind(now_ms)
                            .bind(saved_by)
                            .execute(&mut *tx)
                            .await?;
                    }
                    if spec_changed || was_active != active {
                        crate::sql::query("UPDATE workflows SET active = $2, current_version = $3, updated_at = $4 WHERE id = $1")
                            .bind(id)
                            .bind(active)
                            .bind(version)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                        WorkflowChange::Updated { version, spec_changed, active_changed: was_active != active }
                    } else {
                        WorkflowChange::Unchanged
                    }
                }
            }
        });
        Ok(change)
    }

    /// Every workflow of the account with its current version.
    pub async fn workflows_of_account(&self, account_id: i64) -> Result<Vec<WorkflowRecord>> {
        self.workflow_records(account_id, None).await
    }

    /// One workflow of the account, or `None` when it is not the account's.
    pub async fn workflow_of_account(
        &self,
        account_id: i64,
        workflow_id: i64,
    ) -> Result<Option<WorkflowRecord>> {
        Ok(self
            .workflow_records(account_id, Some(workflow_id))
            .await?
            .pop())
    }

    /// The account's workflows with their current versions: all, or the one `only` names.
    async fn workflow_records(
        &self,
        account_id: i64,
        only: Option<i64>,
    ) -> Result<Vec<WorkflowRecord>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT w.id, w.account_id, w.name, w.builtin, w.active, w.current_version, v.spec FROM workflows w \
                 JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version \
                 WHERE w.account_id = $1 AND ($2 IS NULL OR w.id = $2) ORDER BY w.builtin DESC, w.name",
            )
            .bind(account_id)
            .bind(only)
            .fetch_all(pool)
            .await?;
            rows.iter().map(workflow_from_row).collect()
        })
    }

    /// Every version of a workflow, newest first.
    pub async fn workflow_versions(&self, workflow_id: i64) -> Result<Vec<WorkflowVersion>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT version, spec, created_at, saved_by FROM workflow_versions \
                 WHERE workflow_id = $1 ORDER BY version DESC",
            )
            .bind(workflow_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(WorkflowVersion {
                    version: r.try_get("version")?,
                    spec: r.try_get("spec")?,
                    created_at_ms: r.try_get("created_at")?,
                    saved_by: r.try_get("saved_by")?,
                });
            }
            Ok(out)
        })
    }

    /// Deactivates the account's non-built-in workflows whose names are not in `keep`
    /// (an account file is the whole truth); returns their names.
    pub async fn deactivate_other_workflows(
        &self,
        account_id: i64,
        keep: &[String],
        now_ms: i64,
    ) -> Result<Vec<String>> {
        let current = self.workflows_of_account(account_id).await?;
        let mut gone = Vec::new();
        for w in current
            .into_iter()
            .filter(|w| !w.builtin && w.active && !keep.contains(&w.name))
        {
            in_write_tx!(self, tx => {
                crate::sql::query("UPDATE workflows SET active = FALSE, updated_at = $2 WHERE id = $1")
                    .bind(w.id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            });
            gone.push(w.name);
        }
        Ok(gone)
    }
}
