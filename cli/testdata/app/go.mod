module example.com/app

go 1.20

require (
	github.com/cli/go-gh v1.0.0
	golang.org/x/net v0.0.0-20220923203811-8be639271d50
	github.com/docker/docker v20.10.7+incompatible
	golang.org/x/text v0.3.7
)
