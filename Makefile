# The two entry points README.md gives. Each bootstraps a fresh machine first.
.PHONY: bootstrap demo test down

bootstrap:
	scripts/bootstrap

demo: bootstrap
	xorj dev up

down:
	xorj dev down

test: bootstrap
	python3 -m pytest
