-- The append-only trigger of 0003 covers update and delete; truncate bypasses row and
-- delete triggers, so it gets its own (statement-level, the only kind truncate has).
create trigger catalog_changes_no_truncate
    before truncate on catalog_changes
    for each statement execute function catalog_changes_append_only();
