// Package source is the VaultTerm Events API client: it walks one org's
// window page by page (cursor, page-number or Link pagination), retries what
// is retryable, and decodes each page straight into an Arrow record batch in
// the declared Schema, sending records it cannot map to quarantine.
package source
