package s3test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/vaultsink/vaultsink/internal/s3client"
)

// Download copies every object under prefix into a temp dir, keys kept as
// paths, so an independent reader (DuckDB) reads exactly what S3 serves. It
// returns the local directory of prefix and the sorted keys.
func Download(t testing.TB, srv *Server, prefix string) (string, []string) {
	t.Helper()
	ctx := context.Background()
	cl, err := s3client.NewClient(ctx, srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	dir := t.TempDir()
	var keys []string
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			keys = append(keys, key)
			out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
			fh, err := os.Create(dst)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(fh, out.Body)
			out.Body.Close()
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(keys)
	return filepath.Join(dir, filepath.FromSlash(prefix)), keys
}
