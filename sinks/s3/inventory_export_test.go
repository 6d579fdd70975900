package s3

// SetListMaxKeysForTest makes the inventory list n keys a page; the
// returned function restores the default.
func SetListMaxKeysForTest(n int32) (restore func()) {
	old := listMaxKeys
	listMaxKeys = n
	return func() { listMaxKeys = old }
}
