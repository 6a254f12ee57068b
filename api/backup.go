package api

import "time"

// BackupArchive is one archive of the backup dir, with what its
// verification found.
type BackupArchive struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	Created    time.Time `json:"created"`
	Backend    string    `json:"backend,omitempty"`
	Schema     int64     `json:"schema,omitempty"`
	AuditHead  int64     `json:"audit_head,omitempty"`
	Encrypted  bool      `json:"encrypted"`
	Keys       bool      `json:"keys_included"`
	Verified   bool      `json:"verified"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	Duration   float64   `json:"duration_seconds,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// BackupStatus is GET /api/v1/backups: the schedule, the last outcome
// and the archives of the backup dir.
type BackupStatus struct {
	Configured  bool      `json:"configured"`
	Dir         string    `json:"dir,omitempty"`
	Every       string    `json:"every,omitempty"`
	Keep        int       `json:"keep,omitempty"`
	Running     bool      `json:"running"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// DirError: the backup dir does not list.
	DirError string          `json:"dir_error,omitempty"`
	Archives []BackupArchive `json:"archives"`
}
