-- Version 3 (ingest): a member's identity is its bytes at its place, so two
-- studies holding byte-identical files (a template report, a shared mask)
-- each keep their own row; before, the second was skipped as known.
DROP INDEX sources_sha;
CREATE UNIQUE INDEX sources_member ON sources(sha256, kind, path, member);

-- Why a member was ignored (not a file fvlm reads, a scout, a duplicate
-- slice, another series, a second volume of a study, ...), so that stats
-- can list ignored members with their reason.
ALTER TABLE sources ADD COLUMN reason TEXT;
