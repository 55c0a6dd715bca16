"""What every layer builds with and none owns: Kubernetes building blocks, the registry of rendered
files, YAML for people, the files a layer ships, the program's config-error glue."""
