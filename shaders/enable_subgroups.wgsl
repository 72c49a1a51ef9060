// Directives for the subgroup build of ecr_lanes.wgsl (placed before every declaration). The
// shuffles all run in uniform control flow by construction (every lane executes every one).
enable subgroups;
diagnostic(off, subgroup_uniformity);
