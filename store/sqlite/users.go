package sqlite

import "github.com/patchbay/patchbay/store/internal/usersql"

// userDialect is SQLite's SQL for the web UI's users and sessions.
var userDialect = &usersql.Dialect{
	Insert:           `INSERT INTO users(name, role, password, source, created) VALUES(?,?,?,?,?)`,
	UpsertSSO:        `INSERT INTO users(name, role, password, source, created) VALUES(?,?,'','oidc',?) ON CONFLICT(name) DO UPDATE SET role = excluded.role WHERE users.source = 'oidc'`,
	ByName:           `SELECT name, role, password, source, created FROM users WHERE name = ?`,
	List:             `SELECT name, role, source, created FROM users ORDER BY name`,
	SetPassword:      `UPDATE users SET password = ? WHERE name = ? AND source = 'local'`,
	SetRole:          `UPDATE users SET role = ? WHERE name = ?`,
	Delete:           `DELETE FROM users WHERE name = ?`,
	InsertSession:    `INSERT INTO sessions(hash, username, role, csrf, created, last_seen, expires) VALUES(?,?,?,?,?,?,?)`,
	SessionByHash:    `SELECT username, role, csrf, created, last_seen, expires FROM sessions WHERE hash = ?`,
	Touch:            `UPDATE sessions SET last_seen = ? WHERE hash = ?`,
	DeleteSession:    `DELETE FROM sessions WHERE hash = ?`,
	DeleteSessionsOf: `DELETE FROM sessions WHERE username = ?`,
	DeleteEnded:      `DELETE FROM sessions WHERE expires <= ? OR last_seen <= ?`,
}
