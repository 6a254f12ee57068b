-- +goose Up
-- A job that puts a host back at its previous versions after its rollout
-- halted (RolloutStrategy rollbackOnHalt): delivered although the
-- rollout is halted.
ALTER TABLE plan_hosts ADD COLUMN revert INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE plan_hosts DROP COLUMN revert;
