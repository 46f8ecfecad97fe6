module iro.test/go-pattern-check

go 1.24
