//! `textback apply FILE`: create or update accounts and numbers from a TOML account file.
//! Everything is validated before anything is written (`textback_core::account_file`); a
//! second run of the same file changes nothing and says so.

use textback_core::account_file::{self, AccountFileError};
use textback_store::{AccountRecord, NumberRecord, Store, StoreError, WorkflowChange};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    File(#[from] AccountFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn account_changes(old: &AccountRecord, new: &AccountRecord) -> Vec<&'static str> {
    let mut c = Vec::new();
    if old.name != new.name {
        c.push("name");
    }
    if old.time_zone != new.time_zone {
        c.push("time_zone");
    }
    if old.booking_link != new.booking_link {
        c.push("booking_link");
    }
    if old.business_hours != new.business_hours {
        c.push("business_hours");
    }
    if old.quiet_hours != new.quiet_hours {
        c.push("quiet_hours");
    }
    if old.landline_lookup != new.landline_lookup {
        c.push("landline_lookup");
    }
    if old.do_not_text != new.do_not_text {
        c.push("do_not_text");
    }
    if old.text_back_enabled != new.text_back_enabled {
        c.push("text_back.enabled");
    }
    if old.text_back_template != new.text_back_template {
        c.push("text_back.message");
    }
    if old.cooldown_secs != new.cooldown_secs {
        c.push("text_back.cooldown");
    }
    c
}

fn number_changes(old: &NumberRecord, new: &NumberRecord) -> Vec<&'static str> {
    let mut c = Vec::new();
    if old.account_id != new.account_id {
        c.push("account");
    }
    if old.carrier != new.carrier {
        c.push("carrier");
    }
    if old.ring_to != new.ring_to {
        c.push("ring");
    }
    if old.ring_seconds != new.ring_seconds {
        c.push("ring_time");
    }
    if old.call_screening != new.call_screening {
        c.push("call_screening");
    }
    if old.registration != new.registration {
        c.push("registration");
    }
    if old.active != new.active {
        c.push("active");
    }
    c
}

/// Validates the whole file, then writes it. Returns one line per account and number.
pub async fn apply(store: &Store, text: &str, now_ms: i64) -> Result<Vec<String>, ApplyError> {
    let planned = account_file::plan(text)?;
    let mut report = Vec::new();
    for p in planned {
        let existing = store.account_by_slug(&p.account.slug).await?;
        let account_id = match &existing {
            None => {
                let id = store.save_account(&p.account, now_ms).await?;
                report.push(format!("account {}: created", p.account.slug));
                id
            }
            Some(old) => {
                let changes = account_changes(old, &p.account);
                if changes.is_empty() {
                    report.push(format!("account {}: unchanged", p.account.slug));
                    old.id
                } else {
                    store.save_account(&p.account, now_ms).await?;
                    report.push(format!(
                        "account {}: updated {}",
                        p.account.slug,
                        changes.join(", ")
                    ));
                    old.id
                }
            }
        };
        for mut n in p.numbers {
            n.account_id = account_id;
            match store.number_by_e164(&n.e164).await? {
                None => {
                    store.save_number(&n, now_ms).await?;
                    report.push(format!("number {} ({}): created", n.e164, p.account.slug));
                }
                Some(old) => {
                    let changes = number_changes(&old, &n);
                    if changes.is_empty() {
                        report.push(format!("number {} ({}): unchanged", n.e164, p.account.slug));
                    } else {
                        store.save_number(&n, now_ms).await?;
                        report.push(format!(
                            "number {} ({}): updated {}",
                            n.e164,
                            p.account.slug,
                            changes.join(", ")
                        ));
                    }
                }
            }
        }
        for (spec, builtin) in &p.workflows {
            let json = spec.versioned_json();
            let change = store
                .save_workflow_by(
                    account_id,
                    &spec.name,
                    *builtin,
                    spec.active,
                    &json,
                    now_ms,
                    Some("textback apply"),
                )
                .await?;
            let state = if spec.active { "active" } else { "inactive" };
            let line = match change {
                WorkflowChange::Created => format!("created ({state})"),
                WorkflowChange::Updated {
                    version,
                    spec_changed,
                    ..
                } => {
                    if spec_changed {
                        format!("updated to version {version} ({state})")
                    } else {
                        format!("now {state}")
                    }
                }
                WorkflowChange::Unchanged => "unchanged".to_owned(),
            };
            report.push(format!(
                "workflow {:?} ({}): {line}",
                spec.name, p.account.slug
            ));
        }
        report.extend(p.warnings.iter().cloned());
        if let Some(keep) = &p.keep {
            for name in store
                .deactivate_other_workflows(account_id, keep, now_ms)
                .await?
            {
                report.push(format!(
                    "workflow {name:?} ({}): deactivated (not in the file)",
                    p.account.slug
                ));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICKSTART: &str = include_str!("../../../examples/quickstart.toml");

    async fn store() -> (Store, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let store = Store::connect(&format!("sqlite:{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p =
                    std::env::temp_dir().join(format!("textback-apply-{:016x}", fastrand::u64(..)));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn quickstart_applies_then_is_unchanged() {
        let (store, _dir) = store().await;
        let first = apply(&store, QUICKSTART, 1).await.unwrap();
        assert_eq!(
            first,
            vec![
                "account acme-plumbing: created",
                "number +15125550100 (acme-plumbing): created",
                "workflow \"Text back (built-in)\" (acme-plumbing): created (inactive)",
                "workflow \"Missed call\" (acme-plumbing): created (active)",
            ]
        );
        let again = apply(&store, QUICKSTART, 2).await.unwrap();
        assert_eq!(
            again,
            vec![
                "account acme-plumbing: unchanged",
                "number +15125550100 (acme-plumbing): unchanged",
                "workflow \"Text back (built-in)\" (acme-plumbing): unchanged",
                "workflow \"Missed call\" (acme-plumbing): unchanged",
            ]
        );
        let route = store
            .route_for_number("+15125550100")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(route.account_name, "Acme Plumbing");
        assert_eq!(route.number.ring_to, vec!["+15125550199"]);
        assert_eq!(route.number.ring_seconds, 20);
        let changed = QUICKSTART.replace("ring_time = \"20s\"", "ring_time = \"25s\"");
        assert_ne!(changed, QUICKSTART, "the quickstart sets ring_time");
        let third = apply(&store, &changed, 3).await.unwrap();
        assert_eq!(
            third[1],
            "number +15125550100 (acme-plumbing): updated ring_time"
        );
        // Editing a workflow adds a version; leaving one out of the file deactivates it.
        let edited = QUICKSTART.replace("for = \"30m\"", "for = \"45m\"");
        assert_ne!(edited, QUICKSTART);
        let fourth = apply(&store, &edited, 4).await.unwrap();
        assert_eq!(
            fourth[3],
            "workflow \"Missed call\" (acme-plumbing): updated to version 2 (active)"
        );
        let builtin_on = edited.replace("enabled = false", "enabled = true");
        let fifth = apply(&store, &builtin_on, 5).await.unwrap();
        assert_eq!(
            fifth[2],
            "workflow \"Text back (built-in)\" (acme-plumbing): now active"
        );
    }

    #[tokio::test]
    async fn workflow_errors_name_the_workflow_and_step() {
        let (store, _dir) = store().await;
        let bad = QUICKSTART.replace("for = \"30m\"", "for = \"soon\"");
        let err = apply(&store, &bad, 1).await.unwrap_err().to_string();
        assert!(
            err.contains("workflows[0] (Missed call)") && err.contains("step 4 (wait)"),
            "{err}"
        );
        let unreachable = QUICKSTART.replace(
            "then = [{ type = \"end\" }]",
            "then = [{ type = \"end\" }, { type = \"add_tag\", tag = \"x\" }]",
        );
        let err = apply(&store, &unreachable, 1)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("step 5.then.2 (add_tag)") && err.contains("unreachable"),
            "{err}"
        );
        assert!(store.accounts().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn bad_input_names_the_place_and_changes_nothing() {
        let (store, _dir) = store().await;
        let broken =
            QUICKSTART.replace("Sorry we missed", "{{contact.first_name}}, sorry we missed");
        let err = apply(&store, &broken, 1).await.unwrap_err().to_string();
        assert!(
            err.contains("text_back.message") && err.contains("contact.first_name"),
            "{err}"
        );
        assert!(store.accounts().await.unwrap().is_empty());

        let bad_phone = QUICKSTART.replace("+15125550199", "+1-512-CALL-NOW");
        let err = apply(&store, &bad_phone, 1).await.unwrap_err().to_string();
        assert!(err.contains("numbers[0].ring[0]"), "{err}");

        let bad_tz = QUICKSTART.replace("America/Chicago", "Mars/Olympus");
        let err = apply(&store, &bad_tz, 1).await.unwrap_err().to_string();
        assert!(err.contains("time_zone"), "{err}");

        let typo = QUICKSTART.replace("ring_time", "ring_tme");
        let err = apply(&store, &typo, 1).await.unwrap_err().to_string();
        assert!(err.contains("ring_tme"), "{err}");
        assert!(store.accounts().await.unwrap().is_empty());
    }
}
