package s3client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/check"
)

// CredentialsHint is what to check when an S3 client cannot be built or
// its credentials are refused; section is the config section's path.
func CredentialsHint(section string) string {
	return fmt.Sprintf("check %[1]s.access_key_id/secret_access_key (or their _file variants), %[1]s.role_arn, "+
		"or the AWS default chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, the instance or pod role), and %[1]s.region", section)
}

// CheckBucket checks that bucket exists and that the client may use it
// (HeadBucket, which needs s3:ListBucket, as reading a missing key does).
// section is the config section's path, which the hints name keys under.
func CheckBucket(ctx context.Context, client *s3.Client, bucket, section string) check.Result {
	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
	switch {
	case err == nil:
		return check.OKf("bucket %s: exists and answers (HeadBucket)", bucket)
	case IsNotFound(err):
		return check.Failf(fmt.Sprintf("check %[1]s.bucket (and %[1]s.region, %[1]s.endpoint); `aws s3api head-bucket --bucket %[2]s` tells whether it exists; vaultsink never creates a bucket", section, bucket),
			"bucket %s does not exist (HeadBucket: %v)", bucket, err)
	case HTTPStatus(err) == http.StatusForbidden:
		return check.Failf(fmt.Sprintf("the credentials need s3:ListBucket on arn:aws:s3:::%s; %s", bucket, CredentialsHint(section)),
			"bucket %s: access denied (HeadBucket: %v)", bucket, err)
	case HTTPStatus(err) == http.StatusMovedPermanently || HTTPStatus(err) == http.StatusBadRequest:
		return check.Failf(fmt.Sprintf("set %s.region to the bucket's region (`aws s3api get-bucket-location --bucket %s`)", section, bucket),
			"bucket %s: refused by this endpoint or region (HeadBucket: %v)", bucket, err)
	}
	return check.Failf(fmt.Sprintf("check %[1]s.endpoint, %[1]s.region and that the network reaches S3", section),
		"bucket %s: no answer (HeadBucket: %v)", bucket, err)
}
