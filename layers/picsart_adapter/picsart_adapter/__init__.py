"""The Picsart S3 adapter: everything the Lambda functions share, shipped as a layer."""
