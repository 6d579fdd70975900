package vaultsim

// resource kinds: what an action is about, which decides the resource string
// and the detail keys.
const (
	resSecret = iota
	resVault
	resHost
	resUser
	resToken
	resOrg
	resPolicy
	resGroup
	resInvoice
	resAI
)

// actorKind decides who performs an action.
const (
	byUser = iota
	byService
	bySystem
	byMixed // mostly users, sometimes a service account
)

// action is one catalog entry. Weight is its relative frequency: reads and
// logins dominate a real audit log, breaches are rare.
type action struct {
	Name     string
	Title    string
	Category string
	Severity string
	Weight   int
	Res      int
	Actor    int
	Detail   []string // candidate detail keys; 2–6 are emitted
}

// catalog holds 61 actions over the categories the push connectors use.
var catalog = []action{
	// vault
	{"SECRET_REVEALED", "Secret revealed", "vault", "low", 160, resSecret, byUser, []string{"vault", "secret_type", "via", "reveal_reason", "field", "mfa"}},
	{"SECRET_COPIED", "Secret copied to clipboard", "vault", "info", 120, resSecret, byUser, []string{"vault", "secret_type", "via", "field"}},
	{"SECRET_CREATED", "Secret created", "vault", "info", 40, resSecret, byMixed, []string{"vault", "secret_type", "via", "folder"}},
	{"SECRET_UPDATED", "Secret updated", "vault", "info", 45, resSecret, byMixed, []string{"vault", "secret_type", "via", "fields_changed", "version"}},
	{"SECRET_DELETED", "Secret deleted", "vault", "medium", 8, resSecret, byUser, []string{"vault", "secret_type", "via", "soft_delete"}},
	{"SECRET_SHARED", "Secret shared", "vault", "medium", 12, resSecret, byUser, []string{"vault", "secret_type", "target_user", "permission", "expires_in_days"}},
	{"SECRET_ROTATED", "Secret rotated", "vault", "info", 20, resSecret, byService, []string{"vault", "secret_type", "rotation_policy", "version"}},
	{"SECRET_EXPORTED", "Secrets exported", "vault", "high", 2, resVault, byUser, []string{"vault", "count", "format", "via"}},
	{"VAULT_CREATED", "Vault created", "vault", "low", 2, resVault, byUser, []string{"vault", "visibility"}},
	{"VAULT_DELETED", "Vault deleted", "vault", "high", 1, resVault, byUser, []string{"vault", "secret_count"}},
	{"VAULT_ACCESS_GRANTED", "Vault access granted", "vault", "medium", 6, resVault, byUser, []string{"vault", "target_user", "permission"}},
	{"VAULT_ACCESS_REVOKED", "Vault access revoked", "vault", "medium", 4, resVault, byUser, []string{"vault", "target_user", "permission", "reason"}},
	{"CREDENTIAL_BREACH_DETECTED", "Credential found in a breach", "vault", "critical", 1, resSecret, bySystem, []string{"vault", "breach_source", "secret_type", "first_seen"}},
	{"CREDENTIAL_EXPOSURE_DETECTED", "Credential exposed publicly", "vault", "critical", 1, resSecret, bySystem, []string{"vault", "exposure_url", "secret_type", "detector"}},
	// ssh
	{"SSH_SESSION_STARTED", "SSH session started", "ssh", "info", 90, resHost, byUser, []string{"host", "login_user", "session_id", "cert_ttl_s"}},
	{"SSH_SESSION_ENDED", "SSH session ended", "ssh", "info", 88, resHost, byUser, []string{"host", "login_user", "session_id", "duration_s", "command_count", "bytes_out"}},
	{"SSH_SESSION_REJECTED", "SSH session rejected", "ssh", "medium", 6, resHost, byUser, []string{"host", "login_user", "reason"}},
	{"SSH_CERTIFICATE_ISSUED", "SSH certificate issued", "ssh", "info", 60, resHost, byMixed, []string{"host", "login_user", "cert_ttl_s", "key_type"}},
	{"SSH_HOST_ADDED", "SSH host added", "ssh", "low", 3, resHost, byService, []string{"host", "environment", "key_type"}},
	{"SSH_HOST_REMOVED", "SSH host removed", "ssh", "low", 2, resHost, byService, []string{"host", "environment", "reason"}},
	{"SSH_COMMAND_BLOCKED", "SSH command blocked", "ssh", "high", 2, resHost, byUser, []string{"host", "login_user", "session_id", "command", "policy"}},
	{"SSH_RECORDING_EXPORTED", "SSH recording exported", "ssh", "medium", 1, resHost, byUser, []string{"host", "session_id", "format"}},
	// auth
	{"LOGIN_SUCCEEDED", "Login succeeded", "auth", "info", 110, resUser, byUser, []string{"method", "mfa", "user_agent", "country"}},
	{"LOGIN_FAILED", "Login failed", "auth", "medium", 14, resUser, byUser, []string{"method", "reason", "user_agent", "country", "attempt"}},
	{"LOGOUT", "Logout", "auth", "info", 50, resUser, byUser, []string{"via", "session_age_s"}},
	{"SSO_LOGIN_SUCCEEDED", "SSO login succeeded", "auth", "info", 70, resUser, byUser, []string{"idp", "mfa", "user_agent", "country"}},
	{"MFA_ENROLLED", "MFA method enrolled", "auth", "low", 2, resUser, byUser, []string{"mfa_method", "via"}},
	{"MFA_CHALLENGE_FAILED", "MFA challenge failed", "auth", "medium", 5, resUser, byUser, []string{"mfa_method", "attempt", "country"}},
	{"PASSWORD_CHANGED", "Master password changed", "auth", "low", 2, resUser, byUser, []string{"via", "forced"}},
	{"SESSION_EXPIRED", "Session expired", "auth", "info", 30, resUser, byUser, []string{"session_age_s", "via"}},
	{"ACCOUNT_LOCKED", "Account locked", "auth", "high", 1, resUser, bySystem, []string{"reason", "attempt", "country"}},
	// admin
	{"USER_INVITED", "User invited", "admin", "low", 3, resUser, byUser, []string{"target_user", "role", "via"}},
	{"USER_REMOVED", "User removed", "admin", "medium", 2, resUser, byUser, []string{"target_user", "reason", "transfer_to"}},
	{"ROLE_CHANGED", "Role changed", "admin", "medium", 3, resUser, byUser, []string{"target_user", "old_role", "new_role"}},
	{"POLICY_UPDATED", "Policy updated", "admin", "medium", 2, resPolicy, byUser, []string{"policy", "fields_changed", "version"}},
	{"IP_ALLOWLIST_CHANGED", "IP allowlist changed", "admin", "high", 1, resOrg, byUser, []string{"added", "removed", "rule_count"}},
	{"ORG_SETTINGS_CHANGED", "Organization settings changed", "admin", "medium", 1, resOrg, byUser, []string{"setting", "old_value", "new_value"}},
	{"AUDIT_EXPORT_REQUESTED", "Audit export requested", "admin", "low", 2, resOrg, byMixed, []string{"format", "range_days", "via"}},
	{"GROUP_CREATED", "Group created", "admin", "low", 1, resGroup, byUser, []string{"group", "member_count"}},
	{"GROUP_MEMBER_ADDED", "Group member added", "admin", "low", 4, resGroup, byMixed, []string{"group", "target_user", "role"}},
	// token
	{"API_TOKEN_CREATED", "API token created", "token", "medium", 3, resToken, byUser, []string{"token_name", "scopes", "expires_in_days"}},
	{"API_TOKEN_REVOKED", "API token revoked", "token", "medium", 2, resToken, byUser, []string{"token_name", "reason", "token_age_days"}},
	{"API_TOKEN_USED", "API token used", "token", "info", 70, resToken, byService, []string{"token_name", "endpoint", "status", "user_agent"}},
	{"API_TOKEN_EXPIRED", "API token expired", "token", "low", 2, resToken, bySystem, []string{"token_name", "token_age_days"}},
	{"SERVICE_ACCOUNT_CREATED", "Service account created", "token", "medium", 1, resToken, byUser, []string{"token_name", "scopes"}},
	{"SERVICE_ACCOUNT_KEY_ROTATED", "Service account key rotated", "token", "low", 3, resToken, byService, []string{"token_name", "rotation_policy", "key_type"}},
	// scim
	{"SCIM_USER_PROVISIONED", "User provisioned by SCIM", "scim", "low", 4, resUser, byService, []string{"idp", "target_user", "group", "external_id"}},
	{"SCIM_USER_DEPROVISIONED", "User deprovisioned by SCIM", "scim", "medium", 2, resUser, byService, []string{"idp", "target_user", "external_id"}},
	{"SCIM_USER_UPDATED", "User updated by SCIM", "scim", "info", 8, resUser, byService, []string{"idp", "target_user", "fields_changed"}},
	{"SCIM_GROUP_SYNCED", "Group synced by SCIM", "scim", "info", 6, resGroup, byService, []string{"idp", "group", "member_count", "duration_s"}},
	{"SCIM_SYNC_FAILED", "SCIM sync failed", "scim", "high", 1, resOrg, byService, []string{"idp", "reason", "status"}},
	// billing
	{"PLAN_UPGRADED", "Plan upgraded", "billing", "low", 1, resOrg, byUser, []string{"old_plan", "new_plan", "seats"}},
	{"PLAN_DOWNGRADED", "Plan downgraded", "billing", "medium", 1, resOrg, byUser, []string{"old_plan", "new_plan", "seats"}},
	{"INVOICE_PAID", "Invoice paid", "billing", "info", 1, resInvoice, bySystem, []string{"amount_cents", "currency", "invoice_id"}},
	{"PAYMENT_FAILED", "Payment failed", "billing", "high", 1, resInvoice, bySystem, []string{"amount_cents", "currency", "invoice_id", "reason"}},
	{"SEATS_CHANGED", "Seat count changed", "billing", "low", 1, resOrg, byUser, []string{"old_seats", "new_seats"}},
	// ai
	{"AI_ASSISTANT_QUERY", "AI assistant queried", "ai", "info", 25, resAI, byUser, []string{"model", "prompt_tokens", "completion_tokens", "feature"}},
	{"AI_SECRET_SUGGESTION_ACCEPTED", "AI secret suggestion accepted", "ai", "info", 6, resSecret, byUser, []string{"model", "vault", "secret_type"}},
	{"AI_POLICY_VIOLATION", "AI policy violation", "ai", "high", 1, resAI, byUser, []string{"model", "policy", "reason"}},
	{"AI_ACCESS_GRANTED", "AI access granted", "ai", "medium", 1, resAI, byUser, []string{"model", "target_user", "feature"}},
	{"AI_PROMPT_BLOCKED", "AI prompt blocked", "ai", "medium", 2, resAI, byUser, []string{"model", "reason", "detector"}},
}

// actionSlots maps a uniform draw to a catalog index in O(1): each action
// owns Weight slots.
var actionSlots = func() []uint8 {
	var s []uint8
	for i, a := range catalog {
		for range a.Weight {
			s = append(s, uint8(i))
		}
	}
	return s
}()

var (
	firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
		"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin",
		"amir", "bea", "chen", "dara", "elif", "femi", "gita", "hiro", "ines", "jonas",
		"kemal", "lena", "mateo", "nadia", "omar", "priya", "quinn", "rosa", "sven", "tariq",
		"uma", "vera", "wei", "xena", "yusuf", "zoe", "akira", "bianca", "darius", "esme"}
	lastNames = []string{"smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "anderson", "thomas", "taylor",
		"moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez", "clark",
		"ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "torres",
		"nguyen", "hill", "flores", "green", "adams", "nelson", "baker", "hall", "rivera", "campbell",
		"mitchell", "carter", "roberts", "kowalski", "novak", "schmidt", "rossi", "dubois", "silva", "tanaka"}
	serviceNames = []string{"ci-deploy", "terraform", "k8s-operator", "backup", "rotation-bot", "github-actions",
		"jenkins", "argo", "vault-sync", "siem-export", "ansible", "datadog", "okta-sync", "billing-job",
		"nightly-audit", "cert-manager", "airflow", "spinnaker", "buildkite", "lambda-rotator"}
	vaults      = []string{"prod", "staging", "dev", "shared", "finance", "infra", "ci", "marketing", "security", "data"}
	secretNames = []string{"db-password", "stripe-api-key", "aws-access-key", "github-deploy-key", "smtp-password",
		"datadog-api-key", "tls-wildcard-cert", "redis-auth", "kafka-sasl", "slack-webhook", "oauth-client-secret",
		"jwt-signing-key", "snowflake-password", "pagerduty-token", "sentry-dsn", "gcp-service-account", "root-ssh-key",
		"postgres-replica", "openai-api-key", "twilio-auth-token"}
	hostRoles    = []string{"web", "api", "db", "cache", "worker", "bastion", "kafka", "search", "ml", "batch"}
	environments = []string{"prod", "staging", "dev"}
	secretTypes  = []string{"PASSWORD", "API_KEY", "SSH_KEY", "CERTIFICATE", "DATABASE", "NOTE", "TOTP"}
	vias         = []string{"web", "cli", "api", "extension", "desktop", "mobile"}
	reasons      = []string{"policy", "expired", "manual", "compromise_suspected", "offboarding", "invalid_credentials", "rate_limited", "ip_not_allowed"}
	roles        = []string{"member", "admin", "owner", "auditor", "billing_admin", "read_only"}
	loginUsers   = []string{"root", "ubuntu", "deploy", "ec2-user", "admin", "postgres"}
	keyTypes     = []string{"ed25519", "ecdsa-p256", "rsa-4096"}
	methods      = []string{"password", "passkey", "sso", "magic_link"}
	mfaMethods   = []string{"totp", "webauthn", "push", "sms"}
	idps         = []string{"okta", "azure_ad", "google", "onelogin", "jumpcloud"}
	countries    = []string{"US", "DE", "GB", "FR", "IN", "BR", "JP", "CA", "NL", "SG", "AU", "PL"}
	userAgents   = []string{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Chrome/126.0", "Mozilla/5.0 (Windows NT 10.0) Edge/125.0",
		"vaultterm-cli/3.4.1 (linux; amd64)", "vaultterm-desktop/2.9.0 (darwin)", "python-requests/2.32", "Go-http-client/1.1",
		"Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0", "terraform-provider-vaultterm/1.8.2"}
	permissions = []string{"read", "write", "manage"}
	formats     = []string{"json", "csv", "asciicast"}
	policies    = []string{"require-mfa", "prod-break-glass", "no-root-login", "ai-data-boundary", "secret-rotation-90d", "session-recording"}
	plans       = []string{"free", "team", "business", "enterprise"}
	currencies  = []string{"USD", "EUR", "GBP"}
	models      = []string{"vt-assist-large", "vt-assist-small", "gpt-4o", "claude-sonnet"}
	features    = []string{"explain_policy", "generate_password", "summarize_audit", "draft_runbook"}
	endpoints   = []string{"/api/secrets/v1", "/api/vaults/v1", "/api/ssh/v1/certs", "/api/events/v1", "/api/users/v1"}
	detectors   = []string{"hibp", "github-secret-scanning", "pastebin-monitor", "dlp"}
	breaches    = []string{"combo-list-2026", "collection-7", "darkweb-market", "partner-leak"}
	commands    = []string{"rm -rf /var/lib/postgresql", "curl http://169.254.169.254/", "cat /etc/shadow", "iptables -F", "nc -l 4444"}
	settings    = []string{"session_timeout_min", "require_sso", "password_min_length", "ai_features", "audit_retention_days"}
	fieldNames  = []string{"password", "username", "notes", "url", "otp"}
	scopeSets   = []string{"events:read", "secrets:read", "secrets:read,secrets:write", "ssh:issue", "scim", "events:read,users:read"}
	folders     = []string{"databases", "cloud", "third-party", "internal", "legacy"}
	statuses    = []int{200, 200, 200, 201, 204, 401, 403, 429}
	groups      = []string{"engineering", "sre", "security", "finance", "support", "data-platform", "contractors"}
)
