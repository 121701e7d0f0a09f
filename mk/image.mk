# The container image (docker/Dockerfile; mk/image.sh does the work).
#   make image        build it with docker (when its daemon answers) or podman: netreel:VERSION
#   make test-image   build it with podman from a debootstrapped base (no engine, no registry
#                     but Debian's) and check it from inside: --version, ldd, user, no compiler
#   make programs     only the programs (what the image's build stage runs)
IMAGE_VERSION := $(shell sed -n 's/^\#define NR_VERSION "\(.*\)"/\1/p' lib/util/version.h)
IMAGE ?= netreel:$(IMAGE_VERSION)
TEST_IMAGE ?= localhost/netreel-test:$(IMAGE_VERSION)

.PHONY: programs image test-image image-check-pkgs
programs: image-check-pkgs $(BINS)

# An empty PKG_LIBS (a -dev package missing) would fail late, at the link, with hundreds of
# undefined references: say which package is missing instead.
image-check-pkgs:
	$(Q)pkg-config --print-errors --exists $(PKGS) || \
	    { echo "netreel: a -dev package for one of '$(PKGS)' is missing (mk/deps.sh)" >&2; exit 1; }

image:
	$(Q)./mk/image.sh build $(IMAGE)

# The host build as well: the check compares the image's programs with build/release/bin.
test-image: deps
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory programs
	$(Q)./mk/image.sh test $(TEST_IMAGE) $(B)
