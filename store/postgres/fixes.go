package postgres

import "github.com/patchbay/patchbay/store/internal/fixsql"

const fixColumns = `id, service, branch, forge, mr_number, mr_url, commit_id, state, created, updated, merged, deployed`

// fixDialect is the SQL for fix proposals.
var fixDialect = &fixsql.Dialect{
	Upsert: `INSERT INTO fix_proposals(service, branch, forge, mr_number, mr_url, commit_id, state, created, updated, merged, deployed)
		VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
		ON CONFLICT(service, branch) DO UPDATE SET forge = excluded.forge, mr_number = excluded.mr_number, mr_url = excluded.mr_url,
		commit_id = excluded.commit_id, state = excluded.state, updated = excluded.updated, merged = excluded.merged, deployed = excluded.deployed
		RETURNING id`,
	DeleteFixes: `DELETE FROM fix_proposal_fixes WHERE proposal_id = $1`,
	InsertFix: `INSERT INTO fix_proposal_fixes(proposal_id, ecosystem, package, from_version, to_version, vulnerability, priority, due, deployed)
		VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
	List:  `SELECT ` + fixColumns + ` FROM fix_proposals WHERE $1 = '' OR service = $2 ORDER BY updated DESC, id DESC`,
	ByID:  `SELECT ` + fixColumns + ` FROM fix_proposals WHERE id = $1`,
	Fixes: `SELECT ecosystem, package, from_version, to_version, vulnerability, priority, due, deployed FROM fix_proposal_fixes WHERE proposal_id = $1 ORDER BY priority, due, package, vulnerability`,
}
