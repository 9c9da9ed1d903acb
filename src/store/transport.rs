//! Image transports: docker-archive, oci layout, oci-archive.
