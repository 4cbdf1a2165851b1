//! The missed-call spool: when the database cannot take a call's result, the facts are
//! written to a local file (flushed to disk before the carrier gets its answer) and the
//! caller still hears the voicemail greeting; once the database is back, a background
//! round settles each spooled call through the same once-only rule, and the text back
//! goes out then. One directory per instance; replay is idempotent (a call settles once).

use std::io::Write;
use std::path::{Path, PathBuf};

use textback_store::DialFacts;

/// A spooled call result, with what the missed-call rule needs that the database would
/// have told us.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Spooled {
    pub facts: DialFacts,
    pub call_screening: bool,
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool in `dir`, created if missing.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        Ok(Spool {
            dir: dir.to_owned(),
        })
    }

    /// Writes one entry durably: a temporary file flushed to disk, renamed into place, the
    /// directory flushed, so a crash leaves either the whole entry or none.
    pub fn put(&self, entry: &Spooled) -> std::io::Result<PathBuf> {
        let name = format!(
            "{}-{:016x}",
            jiff::Timestamp::now().as_millisecond(),
            fastrand_u64()
        );
        let tmp = self.dir.join(format!("{name}.tmp"));
        let done = self.dir.join(format!("{name}.json"));
        let json = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &done)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(done)
    }

    /// The entries waiting, oldest first. An unreadable file is skipped (and logged), not
    /// deleted: an operator can look at it.
    pub fn pending(&self) -> std::io::Result<Vec<(PathBuf, Spooled)>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Spooled>(&b).ok())
            {
                Some(entry) => out.push((path, entry)),
                None => {
                    tracing::error!(file = %path.display(), "unreadable spool entry left in place")
                }
            }
        }
        Ok(out)
    }

    pub fn remove(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }
}

fn fastrand_u64() -> u64 {
    u64::from_le_bytes(
        textback_core::secret::random_bytes(8)
            .try_into()
            .unwrap_or([0; 8]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use textback_store::NewCall;

    fn entry(sid: &str) -> Spooled {
        Spooled {
            facts: DialFacts {
                call: NewCall {
                    account_id: 1,
                    number_id: 2,
                    carrier: "twilio".into(),
                    carrier_call_id: sid.into(),
                    caller: "+15125550123".into(),
                    caller_phone: Some("+15125550123".into()),
                    at_ms: 1,
                },
                dial_status: Some("no-answer".into()),
            },
            call_screening: false,
        }
    }

    #[test]
    fn entries_survive_in_order_until_removed() {
        let dir = std::env::temp_dir().join(format!("textback-spool-{:016x}", fastrand_u64()));
        let spool = Spool::open(&dir).unwrap();
        let first = spool.put(&entry("CA1")).unwrap();
        spool.put(&entry("CA2")).unwrap();
        std::fs::write(dir.join("broken.json"), b"{not json").unwrap();
        let pending = spool.pending().unwrap();
        let sids: Vec<&str> = pending
            .iter()
            .map(|(_, e)| e.facts.call.carrier_call_id.as_str())
            .collect();
        assert_eq!(sids.len(), 2);
        assert!(sids.contains(&"CA1") && sids.contains(&"CA2"));
        spool.remove(&first).unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
        assert!(dir.join("broken.json").exists(), "left for an operator");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
