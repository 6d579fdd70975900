package s3client

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// opErr is an S3 call that failed, before it is given its bucket and key.
type opErr struct {
	op  string // S3 operation, e.g. "UploadPart 3"
	err error
}

func (e *opErr) Error() string { return strings.ToLower(e.op[:1]) + e.op[1:] + ": " + e.err.Error() }
func (e *opErr) Unwrap() error { return e.err }

// OpError records which S3 operation (e.g. "PutObject") failed, for Classify.
func OpError(op string, err error) error { return &opErr{op: op, err: err} }

// APICode is the S3 error code of err, or "".
func APICode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// HTTPStatus is the HTTP status of the S3 answer in err, or 0.
func HTTPStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// IsNotFound reports whether err says the key (or bucket) does not exist.
func IsNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf) || APICode(err) == "NoSuchKey" || HTTPStatus(err) == 404
}

// PermissionFor names the IAM action an S3 operation needs.
func PermissionFor(op string) string {
	op, _, _ = strings.Cut(op, " ")
	switch op {
	case "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload":
		return "s3:PutObject"
	case "AbortMultipartUpload":
		return "s3:AbortMultipartUpload"
	case "GetObject", "HeadObject":
		return "s3:GetObject"
	case "ListObjectsV2":
		return "s3:ListBucket"
	case "ListMultipartUploads":
		return "s3:ListBucketMultipartUploads"
	case "DeleteObject":
		return "s3:DeleteObject"
	case "CopyObject":
		return "s3:GetObject and s3:PutObject"
	}
	return "s3:" + op
}

// Classify turns a failed S3 call into the error callers see: it names the
// bucket and key (and what) and, for errors no retry can fix (access denied,
// bad credentials, missing bucket), wraps permanent, the caller's marker of
// such errors, with the permission or setting to check.
func Classify(err, permanent error, bucket, key, what string) error {
	if err == nil {
		return nil
	}
	op := "s3 request"
	var oe *opErr
	if errors.As(err, &oe) {
		op = oe.op
	}
	where := fmt.Sprintf("s3://%s/%s", bucket, key)
	if what != "" {
		where += " (" + what + ")"
	}
	code := APICode(err)
	switch code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed", "ExpiredToken", "InvalidToken":
		return fmt.Errorf("%s: %w: %w: the credentials were refused (%s); check access_key_id/secret_access_key or role_arn, which need %s",
			where, permanent, err, code, PermissionFor(op))
	case "NoSuchBucket", "InvalidBucketName":
		return fmt.Errorf("%s: %w: %w: check the bucket name and region", where, permanent, err)
	}
	if code == "AccessDenied" || code == "AllAccessDisabled" || HTTPStatus(err) == http.StatusForbidden {
		return fmt.Errorf("%s: %w: %w: access denied; the credentials likely lack %s on arn:aws:s3:::%s/%s (or kms:GenerateDataKey/kms:Decrypt with sse: aws:kms)",
			where, permanent, err, PermissionFor(op), bucket, key)
	}
	return fmt.Errorf("%s: %w", where, err)
}
