package postgres

import "github.com/patchbay/patchbay/store/internal/usersql"

// userDialect is PostgreSQL's SQL for the web UI's users and sessions.
var userDialect = &usersql.Dialect{
	Insert:           `INSERT INTO users(name, role, password, source, created) VALUES($1,$2,$3,$4,$5)`,
	UpsertSSO:        `INSERT INTO users(name, role, password, source, created) VALUES($1,$2,'','oidc',$3) ON CONFLICT(name) DO UPDATE SET role = excluded.role WHERE users.source = 'oidc'`,
	ByName:           `SELECT name, role, password, source, created FROM users WHERE name = $1`,
	List:             `SELECT name, role, source, created FROM users ORDER BY name`,
	SetPassword:      `UPDATE users SET password = $1 WHERE name = $2 AND source = 'local'`,
	SetRole:          `UPDATE users SET role = $1 WHERE name = $2`,
	Delete:           `DELETE FROM users WHERE name = $1`,
	InsertSession:    `INSERT INTO sessions(hash, username, role, csrf, created, last_seen, expires) VALUES($1,$2,$3,$4,$5,$6,$7)`,
	SessionByHash:    `SELECT username, role, csrf, created, last_seen, expires FROM sessions WHERE hash = $1`,
	Touch:            `UPDATE sessions SET last_seen = $1 WHERE hash = $2`,
	DeleteSession:    `DELETE FROM sessions WHERE hash = $1`,
	DeleteSessionsOf: `DELETE FROM sessions WHERE username = $1`,
	DeleteEnded:      `DELETE FROM sessions WHERE expires <= $1 OR last_seen <= $2`,
}
