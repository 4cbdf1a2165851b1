-- Who saved each workflow version ("textback apply", "API", or a team member's email),
-- for the builder's version history. Versions saved before this migration have none.
ALTER TABLE workflow_versions ADD COLUMN saved_by TEXT;
