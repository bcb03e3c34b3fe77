"""PostgreSQL built-in functions by what constant folding can do with them (data, generated once).

The planner evaluates a call whose arguments are all constants while it plans (``EXPLAIN`` included), unless
the function is an aggregate, a window function or returns a set. Generated from PostgreSQL 15's catalog
(one name for all its overloads)::

    SELECT p.proname,
           bool_and(p.prokind IN ('a', 'w') OR p.proretset) AS not_folded,
           bool_and(p.prokind = 'f' AND NOT p.proretset AND (t.typlen > 0 OR t.typname IN
                    ('numeric', 'inet', 'cidr', 'name', 'macaddr', 'macaddr8', 'money', 'interval'))) AS bounded
    FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
    WHERE p.oid < 16384 AND p.pronamespace = 'pg_catalog'::regnamespace
    GROUP BY p.proname   -- VARIABLE_SIZE: neither

    NOT_FOLDED: every overload is an aggregate, a window function or set-returning
    VARIABLE_SIZE: not NOT_FOLDED, and some overload returns a type of variable length other than numeric,
                   inet, cidr, name, macaddr, macaddr8, money or interval (text, bytea, arrays, json, jsonb,
                   xml, tsvector, ranges, bit strings, geometric paths …)

Every other built-in name returns a value of bounded size whatever its arguments. A call of constants to a
VARIABLE_SIZE function is bounded by ``budget._pg_call_bound`` (a reviewed bound per name) or counted as
unbounded; a newer server's additions are listed in ``pg_builtins`` (and count as the size of their
arguments) or are unknown (refused on constants).

Two more kinds of call are of unknown size on constants, whatever their result type (``budget._pg_unknown``):

* a jsonpath evaluated on a constant json (:data:`JSONPATH_EVALUATED`, the operators ``@?`` and ``@@``, SQL/JSON
  ``JSON_QUERY``/``JSON_VALUE``/``JSON_EXISTS``): lax-mode subscript lists, ``[*]``, ``.**`` multiply what the
  executor collects before it answers, even a boolean (``jsonb_path_match('1', '$[0,…][0,…]… == 2')``);
* a function of a trusted extension (docs/SECURITY.md) whose result is not bounded by its arguments: it
  decompresses, decrypts, generates or densifies (:data:`EXTENSION_UNBOUNDED`), or it returns a value of variable
  size and has no reviewed bound in :data:`EXTENSION_BOUND` (:data:`EXTENSION_VARIABLE_SIZE`, generated from the
  extensions installable on PostgreSQL 15 with the query above restricted to ``pg_depend`` members of
  ``pg_extension``), or its name is of a family of an extension that is not generated here (PostGIS ``st_…``,
  ``_st_…``, ``postgis_…``; pgcrypto ``pgp_…``: :data:`EXTENSION_PREFIXES`) and not reviewed: fail closed, so a
  function a newer PostGIS or pgcrypto adds is refused on constants until it is reviewed.

And a call of constants to a function of none of these tables is of unknown size too: the budget sizes a call only
when it knows the function, a PostgreSQL built-in (``pg_builtins.PG_BUILTINS``; called unqualified or in
``pg_catalog``) or a reviewed function of a trusted extension (:data:`EXTENSION_BOUND`, :data:`EXTENSION_DIMENSIONS`,
:data:`EXTENSION_FIXED_SIZE`; in any schema). A function created under another name — an extension member whose
SQL body calls ``repeat``, an internal function ``AS 'repeat'``, a C function of pgcrypto's library running
``pgp_sym_decrypt_text`` — runs what it likes, whatever its name says.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EXTENSION_BOUND",
    "EXTENSION_DIMENSIONS",
    "EXTENSION_FIXED_SIZE",
    "EXTENSION_NOT_FOLDED",
    "EXTENSION_PREFIXES",
    "EXTENSION_UNBOUNDED",
    "EXTENSION_VARIABLE_SIZE",
    "JSONPATH_EVALUATED",
    "NOT_FOLDED",
    "VARIABLE_SIZE",
]

NOT_FOLDED: Final[frozenset[str]] = frozenset(
    (
        "aclexplode array_agg avg bit_and bit_or bit_xor bool_and bool_or corr count covar_pop covar_samp "
        "cume_dist dense_rank every first_value generate_series generate_subscripts json_agg "
        "json_array_elements json_array_elements_text json_each json_each_text json_object_agg "
        "json_object_keys json_populate_recordset json_to_recordset jsonb_agg jsonb_array_elements "
        "jsonb_array_elements_text jsonb_each jsonb_each_text jsonb_object_agg jsonb_object_keys "
        "jsonb_path_query jsonb_path_query_tz jsonb_populate_recordset jsonb_to_recordset lag last_value lead "
        "max min mode nth_value ntile percent_rank percentile_cont percentile_disc "
        "pg_available_extension_versions pg_available_extensions pg_config pg_cursor "
        "pg_event_trigger_ddl_commands pg_event_trigger_dropped_objects pg_extension_update_paths "
        "pg_get_backend_memory_contexts pg_get_catalog_foreign_keys pg_get_keywords pg_get_multixact_members "
        "pg_get_publication_tables pg_get_replication_slots pg_get_shmem_allocations "
        "pg_get_wal_resource_managers pg_hba_file_rules pg_ident_file_mappings pg_listening_channels "
        "pg_lock_status pg_logical_slot_get_binary_changes pg_logical_slot_get_changes "
        "pg_logical_slot_peek_binary_changes pg_logical_slot_peek_changes pg_ls_archive_statusdir pg_ls_dir "
        "pg_ls_logdir pg_ls_logicalmapdir pg_ls_logicalsnapdir pg_ls_replslotdir pg_ls_tmpdir pg_ls_waldir "
        "pg_mcv_list_items pg_options_to_table pg_partition_ancestors pg_partition_tree pg_prepared_statement "
        "pg_prepared_xact pg_show_all_file_settings pg_show_all_settings pg_show_replication_origin_status "
        "pg_snapshot_xip pg_stat_get_activity pg_stat_get_backend_idset pg_stat_get_progress_info "
        "pg_stat_get_recovery_prefetch pg_stat_get_slru pg_stat_get_subscription pg_stat_get_wal_senders "
        "pg_tablespace_databases pg_timezone_abbrevs pg_timezone_names range_agg range_intersect_agg rank "
        "regexp_matches regexp_split_to_table regr_avgx regr_avgy regr_count regr_intercept regr_r2 "
        "regr_slope regr_sxx regr_sxy regr_syy row_number stddev stddev_pop stddev_samp string_agg "
        "string_to_table sum ts_debug ts_parse ts_stat ts_token_type txid_snapshot_xip unnest var_pop "
        "var_samp variance xmlagg"
    ).split()
)

VARIABLE_SIZE: Final[frozenset[str]] = frozenset(
    (
        "abbrev acldefault aclinsert aclitemout aclremove any_out anyarray_in anyarray_out anyarray_recv "
        "anyarray_send anycompatible_out anycompatiblearray_in anycompatiblearray_out anycompatiblearray_recv "
        "anycompatiblearray_send anycompatiblemultirange_in anycompatiblemultirange_out "
        "anycompatiblenonarray_out anycompatiblerange_in anycompatiblerange_out anyelement_out anyenum_out "
        "anymultirange_in anymultirange_out anynonarray_out anyrange_in anyrange_out anytextcat "
        "array_agg_array_finalfn array_agg_finalfn array_append array_cat array_dims array_fill array_in "
        "array_larger array_out array_positions array_prepend array_recv array_remove array_replace "
        "array_send array_smaller array_to_json array_to_string array_to_tsvector bit bit_in bit_out bit_recv "
        "bit_send bitand bitcat bitnot bitor bitshiftleft bitshiftright bittypmodout bitxor boolout boolsend "
        "box_out box_send bpchar bpchar_larger bpchar_smaller bpcharin bpcharout bpcharrecv bpcharsend "
        "bpchartypmodout brin_bloom_summary_in brin_bloom_summary_out brin_bloom_summary_recv "
        "brin_bloom_summary_send brin_minmax_multi_summary_in brin_minmax_multi_summary_out "
        "brin_minmax_multi_summary_recv brin_minmax_multi_summary_send btrim bytea_string_agg_finalfn "
        "byteacat byteain byteaout bytearecv byteasend cash_out cash_send cash_words charout charsend chr "
        "cidout cidr_out cidr_send cidsend circle_out circle_send col_description concat concat_ws convert "
        "convert_from convert_to cstring_in cstring_out cstring_recv cstring_send current_query "
        "current_schemas current_setting cursor_to_xml cursor_to_xmlschema database_to_xml "
        "database_to_xml_and_xmlschema database_to_xmlschema date_out date_send datemultirange daterange "
        "daterange_canonical decode encode enum_out enum_range enum_send event_trigger_out fdw_handler_out "
        "float4_accum float4out float4send float8_accum float8_combine float8_regr_accum float8_regr_combine "
        "float8out float8send format format_type gtsvector_union gtsvectorin gtsvectorout host "
        "index_am_handler_out inet_out inet_send initcap int2_avg_accum int2_avg_accum_inv int2out int2send "
        "int2vectorin int2vectorout int2vectorrecv int2vectorsend int4_avg_accum int4_avg_accum_inv "
        "int4_avg_combine int4multirange int4out int4range int4range_canonical int4send int8_avg_serialize "
        "int8multirange int8out int8range int8range_canonical int8send internal_out interval_accum "
        "interval_accum_inv interval_combine interval_out interval_send intervaltypmodout json_agg_finalfn "
        "json_array_element json_array_element_text json_build_array json_build_object json_extract_path "
        "json_extract_path_text json_in json_object json_object_agg_finalfn json_object_field "
        "json_object_field_text json_out json_recv json_send json_strip_nulls json_to_record json_to_tsvector "
        "json_typeof jsonb_agg_finalfn jsonb_array_element jsonb_array_element_text jsonb_build_array "
        "jsonb_build_object jsonb_concat jsonb_delete jsonb_delete_path jsonb_extract_path "
        "jsonb_extract_path_text jsonb_in jsonb_insert jsonb_object jsonb_object_agg_finalfn "
        "jsonb_object_field jsonb_object_field_text jsonb_out jsonb_path_query_array "
        "jsonb_path_query_array_tz jsonb_path_query_first jsonb_path_query_first_tz jsonb_pretty jsonb_recv "
        "jsonb_send jsonb_set jsonb_set_lax jsonb_strip_nulls jsonb_to_record jsonb_to_tsvector jsonb_typeof "
        "jsonpath_in jsonpath_out jsonpath_recv jsonpath_send language_handler_out left like_escape line_out "
        "line_send lo_get loread lower lpad lseg_out lseg_send ltrim macaddr8_out macaddr8_send macaddr_out "
        "macaddr_send md5 multirange multirange_agg_finalfn multirange_in multirange_intersect "
        "multirange_intersect_agg_transfn multirange_minus multirange_out multirange_recv multirange_send "
        "multirange_union nameout namesend normalize numeric_avg_serialize numeric_out numeric_poly_serialize "
        "numeric_send numeric_serialize numerictypmodout nummultirange numrange obj_description oidout "
        "oidsend oidvectorin oidvectorout oidvectorrecv oidvectorsend oidvectortypes overlay parse_ident path "
        "path_add path_add_pt path_div_pt path_in path_mul_pt path_out path_recv path_send path_sub_pt pclose "
        "percentile_cont_float8_multi_final percentile_cont_interval_multi_final percentile_disc_multi_final "
        "pg_backup_stop pg_blocking_pids pg_collation_actual_version pg_collation_for pg_column_compression "
        "pg_control_checkpoint pg_control_init pg_control_recovery pg_control_system "
        "pg_copy_logical_replication_slot pg_copy_physical_replication_slot "
        "pg_create_logical_replication_slot pg_create_physical_replication_slot pg_current_logfile "
        "pg_current_snapshot pg_database_collation_actual_version pg_ddl_command_out pg_ddl_command_send "
        "pg_dependencies_in pg_dependencies_out pg_dependencies_recv pg_dependencies_send pg_describe_object "
        "pg_export_snapshot pg_get_constraintdef pg_get_expr pg_get_function_arg_default "
        "pg_get_function_arguments pg_get_function_identity_arguments pg_get_function_result "
        "pg_get_function_sqlbody pg_get_functiondef pg_get_indexdef pg_get_object_address "
        "pg_get_partition_constraintdef pg_get_partkeydef pg_get_ruledef pg_get_serial_sequence "
        "pg_get_statisticsobjdef pg_get_statisticsobjdef_columns pg_get_statisticsobjdef_expressions "
        "pg_get_triggerdef pg_get_viewdef pg_get_wal_replay_pause_state pg_identify_object "
        "pg_identify_object_as_address pg_indexam_progress_phasename pg_last_committed_xact pg_lsn_out "
        "pg_lsn_send pg_mcv_list_in pg_mcv_list_out pg_mcv_list_recv pg_mcv_list_send pg_ndistinct_in "
        "pg_ndistinct_out pg_ndistinct_recv pg_ndistinct_send pg_node_tree_in pg_node_tree_out "
        "pg_node_tree_recv pg_node_tree_send pg_read_binary_file pg_read_file pg_read_file_old "
        "pg_relation_filepath pg_replication_slot_advance pg_safe_snapshot_blocking_pids "
        "pg_sequence_parameters pg_settings_get_flags pg_size_pretty pg_snapshot_in pg_snapshot_out "
        "pg_snapshot_recv pg_snapshot_send pg_stat_file pg_stat_get_archiver pg_stat_get_backend_activity "
        "pg_stat_get_backend_wait_event pg_stat_get_backend_wait_event_type pg_stat_get_replication_slot "
        "pg_stat_get_subscription_stats pg_stat_get_wal pg_stat_get_wal_receiver pg_tablespace_location "
        "pg_walfile_name pg_walfile_name_offset pg_xact_commit_timestamp_origin pg_xact_status "
        "phraseto_tsquery plainto_tsquery point_out point_send poly_in poly_out poly_recv poly_send polygon "
        "popen query_to_xml query_to_xml_and_xmlschema query_to_xmlschema querytree quote_ident quote_literal "
        "quote_nullable range_agg_finalfn range_gist_union range_in range_intersect "
        "range_intersect_agg_transfn range_merge range_minus range_out range_recv range_send range_union "
        "record_in record_out record_recv record_send regclassout regclasssend regcollationout "
        "regcollationsend regconfigout regconfigsend regdictionaryout regdictionarysend regexp_match "
        "regexp_replace regexp_split_to_array regexp_substr regnamespaceout regnamespacesend regoperatorout "
        "regoperatorsend regoperout regopersend regprocedureout regproceduresend regprocout regprocsend "
        "regroleout regrolesend regtypeout regtypesend repeat replace reverse right row_to_json rpad rtrim "
        "schema_to_xml schema_to_xml_and_xmlschema schema_to_xmlschema set_bit set_byte set_config setweight "
        "sha224 sha256 sha384 sha512 shell_out shobj_description similar_escape similar_to_escape split_part "
        "string_agg_finalfn string_to_array strip substr substring table_am_handler_out table_to_xml "
        "table_to_xml_and_xmlschema table_to_xmlschema text text_larger text_smaller textanycat textcat "
        "textin textout textrecv textsend tidout tidsend time_out time_send timeofday timestamp_out "
        "timestamp_send timestamptypmodout timestamptz_out timestamptz_send timestamptztypmodout "
        "timetypmodout timetz_out timetz_send timetztypmodout to_ascii to_char to_hex to_json to_jsonb "
        "to_tsquery to_tsvector translate trigger_out trim_array ts_delete ts_filter ts_headline ts_lexize "
        "ts_rewrite tsm_handler_out tsmultirange tsquery_and tsquery_not tsquery_or tsquery_phrase tsqueryin "
        "tsqueryout tsqueryrecv tsquerysend tsrange tstzmultirange tstzrange tsvector_concat "
        "tsvector_to_array tsvectorin tsvectorout tsvectorrecv tsvectorsend txid_current_snapshot "
        "txid_snapshot_in txid_snapshot_out txid_snapshot_recv txid_snapshot_send txid_status unistr "
        "unknownin unknownout unknownrecv unknownsend upper uuid_out uuid_send varbit varbit_in varbit_out "
        "varbit_recv varbit_send varbittypmodout varchar varcharin varcharout varcharrecv varcharsend "
        "varchartypmodout version void_out void_send websearch_to_tsquery xid8out xid8send xidout xidsend xml "
        "xml_in xml_out xml_recv xml_send xmlcomment xmlconcat2 xpath"
    ).split()
)

# Built-ins that evaluate a jsonpath: on a constant json and a constant path the planner runs the path while it plans,
# and what it collects (each subscript list, [*], .**, .* multiplies it) is bounded by neither argument, whatever the
# result type. jsonb_path_query and jsonb_path_query_tz return sets (NOT_FOLDED): listed for the record.
JSONPATH_EVALUATED: Final[frozenset[str]] = frozenset(
    (
        "jsonb_path_exists jsonb_path_exists_tz jsonb_path_exists_opr jsonb_path_match jsonb_path_match_tz "
        "jsonb_path_match_opr jsonb_path_query jsonb_path_query_tz jsonb_path_query_array "
        "jsonb_path_query_array_tz jsonb_path_query_first jsonb_path_query_first_tz"
    ).split()
)

# Set-returning functions of the trusted extensions: not folded.
EXTENSION_NOT_FOLDED: Final[frozenset[str]] = frozenset(("each skeys svals pgp_armor_headers").split())

# Functions of the trusted extensions returning a value of variable size (PostgreSQL 15: bloom, btree_gin,
# btree_gist, citext, cube, earthdistance, fuzzystrmatch, hstore, intarray, isn, ltree, pg_trgm, pgcrypto, seg,
# tsm_system_rows, tsm_system_time, unaccent, uuid-ossp; names that are also built-ins are classed as built-ins).
# Without an entry in EXTENSION_BOUND a call of constants to one counts as of unknown size.
EXTENSION_VARIABLE_SIZE: Final[frozenset[str]] = frozenset(
    (
        "_int_inter _int_union _intbig_in _intbig_out _ltq_extract_regex _ltree_extract_isparent "
        "_ltree_extract_risparent _ltree_union _ltxtq_extract_exec akeys armor avals bqarr_in bqarr_out citext "
        "citext_larger citext_smaller citextin citextout citextrecv citextsend crypt cube cube_enlarge cube_in "
        "cube_inter cube_out cube_recv cube_send cube_subset cube_union dearmor decrypt decrypt_iv delete digest "
        "dmetaphone dmetaphone_alt ean13_out earth_box encrypt encrypt_iv fetchval g_cube_union g_int_union "
        "g_intbig_union gbt_bit_union gbt_bytea_union gbt_numeric_union gbt_text_union gbtreekey16_out "
        "gbtreekey2_out gbtreekey32_out gbtreekey4_out gbtreekey8_out gbtreekey_var_in gbtreekey_var_out "
        "gen_random_bytes gen_salt ghstore_in ghstore_out ghstore_union gtrgm_in gtrgm_out gtrgm_union hmac "
        "hs_concat hstore hstore_in hstore_out hstore_recv hstore_send hstore_to_array hstore_to_json "
        "hstore_to_json_loose hstore_to_jsonb hstore_to_jsonb_loose hstore_to_matrix intarray_del_elem "
        "intarray_push_array intarray_push_elem intset intset_subtract intset_union_elem isn_out lca ll_to_earth "
        "lquery_in lquery_out lquery_recv lquery_send ltree2text ltree_addltree ltree_addtext ltree_gist_in "
        "ltree_gist_out ltree_in ltree_out ltree_recv ltree_send ltree_textadd ltree_union ltxtq_in ltxtq_out "
        "ltxtq_recv ltxtq_send metaphone pgp_key_id pgp_pub_decrypt pgp_pub_decrypt_bytea pgp_pub_encrypt "
        "pgp_pub_encrypt_bytea pgp_sym_decrypt pgp_sym_decrypt_bytea pgp_sym_encrypt pgp_sym_encrypt_bytea "
        "querytree seg_out show_trgm slice slice_array sort sort_asc sort_desc soundex subarray subltree subpath "
        "tconvert text2ltree text_soundex unaccent uniq"
    ).split()
)

# Families of names of trusted extensions not generated above (not installable where this was generated: PostGIS,
# and pgcrypto's PGP functions for the versions to come): a call of constants to a name of one that is not
# reviewed (EXTENSION_BOUND) counts as of unknown size.
EXTENSION_PREFIXES: Final[tuple[str, ...]] = ("st_", "_st_", "postgis_", "_postgis_", "pgp_")

# Reviewed: the result is not bounded by the arguments. pgcrypto decrypts and DECOMPRESSES a PGP message (zlib or
# bzip2, ~1000:1: 90 KB of constant made 40 MB per call); PostGIS densifies (ST_Segmentize by a length, ST_Buffer,
# ST_OffsetCurve, ST_MinimumBoundingCircle by segments per quarter circle, ST_LineInterpolatePoints by a
# fraction), generates (ST_GeneratePoints by a count, ST_Letters, grids and tiles by a cell size, rasters by their
# width and height), or overlays (intersections of n and m segments: n × m vertices).
EXTENSION_UNBOUNDED: Final[frozenset[str]] = frozenset(
    (
        "pgp_sym_decrypt pgp_sym_decrypt_bytea pgp_pub_decrypt pgp_pub_decrypt_bytea "
        "st_segmentize st_buffer st_offsetcurve st_minimumboundingcircle st_lineinterpolatepoints "
        "st_generatepoints st_letters st_hexagongrid st_squaregrid st_subdivide st_tile st_chaikinsmoothing "
        "st_delaunaytriangles st_voronoipolygons st_voronoilines st_concavehull st_intersection st_union "
        "st_difference st_symdifference st_unaryunion st_node st_split st_makevalid st_snap st_sharedpaths "
        "st_makeemptyraster st_asraster st_addband st_resize st_rescale st_resample st_mapalgebra st_clip "
        "st_makeemptycoverage st_asmvt st_asgeobuf st_asflatgeobuf st_geohash st_snaptogrid st_astiff "
        "st_aspng st_asjpeg st_asgdalraster st_interpolateraster st_triangulatepolygon st_tesselate "
        "st_straightskeleton st_approximatemedialaxis st_extrude st_minkowskisum st_3dintersection st_3dunion "
        "st_3ddifference st_buildarea st_polygonize st_clusterintersecting st_clusterwithin st_locatealong "
        "st_locatebetween st_locatebetweenelevations st_lineinterpolatepoint3d st_maximuminscribedcircle "
        "st_largestemptycircle st_reduceprecision st_linecrossingdirection st_coverageunion "
        "st_coveragesimplify st_coverageinvalidedges st_generatepointsinpolygon"
    ).split()
)

# Reviewed bounds: a call of constants to one builds at most factor × its arguments' bytes + 4 KB (budget adds
# the 4 KB: a hash, a salt, a fixed-size box or point, a version string). Fixed-size results and parts,
# unions and re-encodings of their arguments are 1; texts of coordinates (a double printed: up to 25
# characters per 8 bytes) 8; JSON of an hstore 6; trigrams of a text 16.
EXTENSION_BOUND: Final[dict[str, int]] = {
    # pgcrypto: digests, salts and hashes are fixed; raw decryption and dearmoring shrink; encryption adds a
    # block and, for PGP, a header and compression's worst case; armor is base64 plus headers.
    **dict.fromkeys(
        (
            "digest hmac crypt gen_salt gen_random_uuid pgp_key_id decrypt decrypt_iv dearmor "
            "gen_random_bytes"  # at most 1024 bytes
        ).split(),
        1,
    ),
    **dict.fromkeys("encrypt encrypt_iv pgp_sym_encrypt pgp_sym_encrypt_bytea pgp_pub_encrypt".split(), 2),
    "pgp_pub_encrypt_bytea": 2,
    "armor": 4,
    # hstore, intarray, ltree, cube, citext, earthdistance, seg, isn, fuzzystrmatch, unaccent, pg_trgm
    **dict.fromkeys(
        (
            "akeys avals delete fetchval hs_concat hstore hstore_in hstore_recv hstore_send hstore_to_array "
            "slice slice_array tconvert _int_inter _int_union intarray_del_elem intarray_push_array "
            "intarray_push_elem intset intset_subtract intset_union_elem sort sort_asc sort_desc subarray uniq "
            "bqarr_in lca ltree2text ltree_addltree ltree_addtext ltree_in ltree_recv ltree_send ltree_textadd "
            "lquery_in lquery_recv lquery_send ltxtq_in ltxtq_recv ltxtq_send subltree subpath text2ltree "
            "_ltq_extract_regex _ltree_extract_isparent _ltree_extract_risparent _ltxtq_extract_exec "
            "cube cube_in cube_inter cube_recv cube_send cube_union earth_box ll_to_earth "
            "citext citext_larger citext_smaller citextin citextrecv citextsend citextout "
            "seg_out ean13_out isn_out soundex text_soundex"
        ).split(),
        1,
    ),
    **dict.fromkeys("hstore_out hstore_to_matrix lquery_out ltree_out ltxtq_out metaphone".split(), 2),
    **dict.fromkeys("dmetaphone dmetaphone_alt unaccent querytree bqarr_out cube_out".split(), 4),
    "cube_subset": 4,  # as many dimensions (16 bytes) as its index array has elements (4 bytes)
    "cube_enlarge": 4,  # up to 100 dimensions (CUBE_MAX_DIM): within the 4 KB
    **dict.fromkeys("hstore_to_json hstore_to_json_loose hstore_to_jsonb hstore_to_jsonb_loose".split(), 6),
    "show_trgm": 16,
    # PostGIS (by name: not installable where this was generated). Measures, predicates, accessors, constructors
    # of a point or a box, parsers, and transformations that keep or drop vertices: 1 (ST_Force4D and
    # ST_Force3D* add coordinates, ST_ClipByBox2D a corner per edge: 2; ST_GeomFromTWKB and encoded polylines
    # expand varints to doubles: 16; ST_Transform only in its geometry forms: budget checks its arity).
    **dict.fromkeys(
        (
            "st_area st_length st_length2d st_3dlength st_perimeter st_perimeter2d st_3dperimeter st_distance "
            "st_3ddistance st_distancesphere st_distancespheroid st_maxdistance st_3dmaxdistance "
            "st_hausdorffdistance st_frechetdistance st_dwithin st_3ddwithin st_dfullywithin st_intersects "
            "st_3dintersects st_contains st_containsproperly st_within st_covers st_coveredby st_crosses "
            "st_touches st_overlaps st_disjoint st_equals st_orderingequals st_relate st_relatematch st_isvalid "
            "st_isvalidreason st_isempty st_issimple st_isclosed st_isring st_iscollection st_hasarc st_npoints "
            "st_nrings st_numgeometries st_numpoints st_numinteriorrings st_numinteriorring st_ndims "
            "st_dimension st_coorddim st_zmflag st_geometrytype st_srid st_x st_y st_z st_m st_xmin st_xmax "
            "st_ymin st_ymax st_zmin st_zmax st_azimuth st_angle st_makepoint st_point st_pointz st_pointm "
            "st_pointzm st_makepointm st_setsrid st_geomfromtext st_geometryfromtext st_geomfromewkt "
            "st_geogfromtext st_geographyfromtext st_geomfromwkb st_geomfromewkb st_geogfromwkb "
            "st_geomfromgeojson st_geomfromgml st_geomfromkml st_gmltosql st_pointfromtext st_linefromtext "
            "st_polygonfromtext st_polyfromtext st_mpointfromtext st_mlinefromtext st_mpolyfromtext "
            "st_geomcollfromtext st_pointfromgeohash st_geomfromgeohash st_box2dfromgeohash st_makeenvelope "
            "st_tileenvelope st_envelope st_extent st_3dextent st_expand st_centroid st_pointonsurface "
            "st_startpoint st_endpoint st_pointn st_geometryn st_exteriorring st_interiorringn st_boundary "
            "st_convexhull st_simplify st_simplifypreservetopology st_simplifyvw st_reverse st_force2d "
            "st_forcerhr st_forcepolygoncw st_forcepolygonccw st_forcecollection st_multi st_flipcoordinates "
            "st_swapordinates st_translate st_scale st_rotate st_rotatex st_rotatey st_rotatez st_affine "
            "st_transscale st_transform st_setpoint st_addpoint st_removepoint st_removerepeatedpoints "
            "st_makeline st_makepolygon st_polygon st_collect st_linemerge st_linesubstring "
            "st_lineinterpolatepoint st_linelocatepoint st_closestpoint st_shortestline st_longestline "
            "st_3dclosestpoint st_3dshortestline st_3dlongestline st_collectionextract st_collectionhomogenize "
            "st_normalize st_asbinary st_asewkb st_ashexewkb st_aswkb st_summary st_memsize st_isvaliddetail "
            "st_estimatedextent st_srid st_issimple st_geometricmedian st_project st_clusterdbscan "
            "st_clusterkmeans st_bdpolyfromtext st_bdmpolyfromtext st_wkbtosql st_wkttosql "
            "postgis_version postgis_full_version postgis_lib_version postgis_lib_build_date postgis_geos_version "
            "postgis_proj_version postgis_scripts_installed postgis_scripts_released postgis_lib_revision "
            "postgis_libxml_version postgis_gdal_version postgis_sfcgal_version postgis_wagyu_version "
            "geometry geography box2d box3d geometrytype"
        ).split(),
        1,
    ),
    **dict.fromkeys("st_force3d st_force3dz st_force3dm st_force4d st_clipbybox2d".split(), 2),
    **dict.fromkeys(
        (
            "st_astext st_asewkt st_asgeojson st_askml st_asgml st_asx3d st_assvg st_astwkb st_asencodedpolyline "
            "st_aslatlontext st_ashexwkb st_asmvtgeom"
        ).split(),
        8,
    ),
    **dict.fromkeys("st_geomfromtwkb st_linefromencodedpolyline".split(), 16),
    # pgvector: an array's elements as 4-byte floats (an element of an array's text is at least 2 bytes)
    **dict.fromkeys("array_to_vector array_to_halfvec array_to_sparsevec".split(), 2),
    # pgvector: a vector's parts, sums, products, normalisations and re-encodings (a half-precision element
    # widened to 4 bytes, a dense element to a sparse index and value: 2)
    **dict.fromkeys(
        (
            "l2_normalize binary_quantize subvector vector_add vector_sub vector_mul vector_concat "
            "halfvec_add halfvec_sub halfvec_mul halfvec_concat vector_to_float4 vector_to_halfvec"
        ).split(),
        1,
    ),
    **dict.fromkeys(
        "halfvec_to_vector halfvec_to_float4 vector_to_sparsevec halfvec_to_sparsevec".split(), 2
    ),
}

# pgvector: a dense vector of up to 16,000 dimensions, whatever its argument (a sparse vector, '{1:1}/16000', is 14
# bytes): the bytes such a call or cast can add to its arguments (budget).
EXTENSION_DIMENSIONS: Final[dict[str, int]] = {
    "vector": 4 * 16_000 + 8,
    "halfvec": 2 * 16_000 + 8,
    "sparsevec_to_vector": 4 * 16_000 + 8,
    "sparsevec_to_halfvec": 2 * 16_000 + 8,
}

# Functions of the trusted extensions returning a value of fixed size (a number, a boolean, a uuid, a point, an
# index key of fixed length): a call of constants to one counts as the size of its arguments. Generated like
# EXTENSION_VARIABLE_SIZE (pg_depend members of the extensions installable on PostgreSQL 15 whose result type has
# a fixed length, typlen > 0; names of built-ins, set-returning functions and EXTENSION_BOUND left out):
#
#   SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass
#     AND d.objid = p.oid AND d.deptype = 'e' JOIN pg_type t ON t.oid = p.prorettype
#   WHERE t.typlen > 0 AND NOT p.proretset AND p.proname NOT IN (SELECT proname FROM pg_proc WHERE oid < 16384)
#
# plus pgvector's distances, norms and dimensions (by name: not installable where this was generated). A name in
# none of the tables of this module nor a built-in (pg_builtins) is of unknown size on constants (budget).
EXTENSION_FIXED_SIZE: Final[frozenset[str]] = frozenset(
    (
        "_int_contained _int_contained_joinsel _int_contained_sel _int_contains _int_contains_joinsel "
        "_int_contains_sel _int_different _int_matchsel _int_overlap _int_overlap_joinsel _int_overlap_sel "
        "_int_same _lt_q_regex _lt_q_rregex _ltq_regex _ltq_rregex _ltree_compress _ltree_consistent "
        "_ltree_gist_options _ltree_isparent _ltree_penalty _ltree_picksplit _ltree_r_isparent "
        "_ltree_r_risparent _ltree_risparent _ltree_same _ltxtq_exec _ltxtq_rexec blhandler boolop btean13cmp "
        "btisbn13cmp btisbncmp btismn13cmp btismncmp btissn13cmp btissncmp btupccmp cash_dist citext_cmp "
        "citext_eq citext_ge citext_gt citext_hash citext_hash_extended citext_le citext_lt citext_ne "
        "citext_pattern_cmp citext_pattern_ge citext_pattern_gt citext_pattern_le citext_pattern_lt cube_cmp "
        "cube_contained cube_contains cube_coord cube_coord_llur cube_dim cube_distance cube_eq cube_ge "
        "cube_gt cube_is_point cube_le cube_ll_coord cube_lt cube_ne cube_overlap cube_size cube_ur_coord "
        "date_dist defined difference distance_chebyshev distance_taxicab ean13_in earth earth_distance exist "
        "exists_all exists_any float4_dist float8_dist g_cube_consistent g_cube_distance g_cube_penalty "
        "g_cube_picksplit g_cube_same g_int_compress g_int_consistent g_int_decompress g_int_options "
        "g_int_penalty g_int_picksplit g_int_same g_intbig_compress g_intbig_consistent g_intbig_decompress "
        "g_intbig_options g_intbig_penalty g_intbig_picksplit g_intbig_same gbt_bit_compress "
        "gbt_bit_consistent gbt_bit_penalty gbt_bit_picksplit gbt_bit_same gbt_bool_compress "
        "gbt_bool_consistent gbt_bool_fetch gbt_bool_penalty gbt_bool_picksplit gbt_bool_same gbt_bool_union "
        "gbt_bpchar_compress gbt_bpchar_consistent gbt_bytea_compress gbt_bytea_consistent gbt_bytea_penalty "
        "gbt_bytea_picksplit gbt_bytea_same gbt_cash_compress gbt_cash_consistent gbt_cash_distance "
        "gbt_cash_fetch gbt_cash_penalty gbt_cash_picksplit gbt_cash_same gbt_cash_union gbt_date_compress "
        "gbt_date_consistent gbt_date_distance gbt_date_fetch gbt_date_penalty gbt_date_picksplit "
        "gbt_date_same gbt_date_union gbt_decompress gbt_enum_compress gbt_enum_consistent gbt_enum_fetch "
        "gbt_enum_penalty gbt_enum_picksplit gbt_enum_same gbt_enum_union gbt_float4_compress "
        "gbt_float4_consistent gbt_float4_distance gbt_float4_fetch gbt_float4_penalty gbt_float4_picksplit "
        "gbt_float4_same gbt_float4_union gbt_float8_compress gbt_float8_consistent gbt_float8_distance "
        "gbt_float8_fetch gbt_float8_penalty gbt_float8_picksplit gbt_float8_same gbt_float8_union "
        "gbt_inet_compress gbt_inet_consistent gbt_inet_penalty gbt_inet_picksplit gbt_inet_same "
        "gbt_inet_union gbt_int2_compress gbt_int2_consistent gbt_int2_distance gbt_int2_fetch "
        "gbt_int2_penalty gbt_int2_picksplit gbt_int2_same gbt_int2_union gbt_int4_compress "
        "gbt_int4_consistent gbt_int4_distance gbt_int4_fetch gbt_int4_penalty gbt_int4_picksplit "
        "gbt_int4_same gbt_int4_union gbt_int8_compress gbt_int8_consistent gbt_int8_distance gbt_int8_fetch "
        "gbt_int8_penalty gbt_int8_picksplit gbt_int8_same gbt_int8_union gbt_intv_compress "
        "gbt_intv_consistent gbt_intv_decompress gbt_intv_distance gbt_intv_fetch gbt_intv_penalty "
        "gbt_intv_picksplit gbt_intv_same gbt_intv_union gbt_macad8_compress gbt_macad8_consistent "
        "gbt_macad8_fetch gbt_macad8_penalty gbt_macad8_picksplit gbt_macad8_same gbt_macad8_union "
        "gbt_macad_compress gbt_macad_consistent gbt_macad_fetch gbt_macad_penalty gbt_macad_picksplit "
        "gbt_macad_same gbt_macad_union gbt_numeric_compress gbt_numeric_consistent gbt_numeric_penalty "
        "gbt_numeric_picksplit gbt_numeric_same gbt_oid_compress gbt_oid_consistent gbt_oid_distance "
        "gbt_oid_fetch gbt_oid_penalty gbt_oid_picksplit gbt_oid_same gbt_oid_union gbt_text_compress "
        "gbt_text_consistent gbt_text_penalty gbt_text_picksplit gbt_text_same gbt_time_compress "
        "gbt_time_consistent gbt_time_distance gbt_time_fetch gbt_time_penalty gbt_time_picksplit "
        "gbt_time_same gbt_time_union gbt_timetz_compress gbt_timetz_consistent gbt_ts_compress "
        "gbt_ts_consistent gbt_ts_distance gbt_ts_fetch gbt_ts_penalty gbt_ts_picksplit gbt_ts_same "
        "gbt_ts_union gbt_tstz_compress gbt_tstz_consistent gbt_tstz_distance gbt_uuid_compress "
        "gbt_uuid_consistent gbt_uuid_fetch gbt_uuid_penalty gbt_uuid_picksplit gbt_uuid_same gbt_uuid_union "
        "gbt_var_decompress gbt_var_fetch gbtreekey16_in gbtreekey2_in gbtreekey32_in gbtreekey4_in "
        "gbtreekey8_in gc_to_sec geo_distance ghstore_compress ghstore_consistent ghstore_decompress "
        "ghstore_options ghstore_penalty ghstore_picksplit ghstore_same gin_btree_consistent "
        "gin_compare_prefix_anyenum gin_compare_prefix_bit gin_compare_prefix_bool gin_compare_prefix_bpchar "
        "gin_compare_prefix_bytea gin_compare_prefix_char gin_compare_prefix_cidr gin_compare_prefix_date "
        "gin_compare_prefix_float4 gin_compare_prefix_float8 gin_compare_prefix_inet gin_compare_prefix_int2 "
        "gin_compare_prefix_int4 gin_compare_prefix_int8 gin_compare_prefix_interval "
        "gin_compare_prefix_macaddr gin_compare_prefix_macaddr8 gin_compare_prefix_money "
        "gin_compare_prefix_name gin_compare_prefix_numeric gin_compare_prefix_oid gin_compare_prefix_text "
        "gin_compare_prefix_time gin_compare_prefix_timestamp gin_compare_prefix_timestamptz "
        "gin_compare_prefix_timetz gin_compare_prefix_uuid gin_compare_prefix_varbit gin_consistent_hstore "
        "gin_enum_cmp gin_extract_hstore gin_extract_hstore_query gin_extract_query_anyenum "
        "gin_extract_query_bit gin_extract_query_bool gin_extract_query_bpchar gin_extract_query_bytea "
        "gin_extract_query_char gin_extract_query_cidr gin_extract_query_date gin_extract_query_float4 "
        "gin_extract_query_float8 gin_extract_query_inet gin_extract_query_int2 gin_extract_query_int4 "
        "gin_extract_query_int8 gin_extract_query_interval gin_extract_query_macaddr "
        "gin_extract_query_macaddr8 gin_extract_query_money gin_extract_query_name gin_extract_query_numeric "
        "gin_extract_query_oid gin_extract_query_text gin_extract_query_time gin_extract_query_timestamp "
        "gin_extract_query_timestamptz gin_extract_query_timetz gin_extract_query_trgm gin_extract_query_uuid "
        "gin_extract_query_varbit gin_extract_value_anyenum gin_extract_value_bit gin_extract_value_bool "
        "gin_extract_value_bpchar gin_extract_value_bytea gin_extract_value_char gin_extract_value_cidr "
        "gin_extract_value_date gin_extract_value_float4 gin_extract_value_float8 gin_extract_value_inet "
        "gin_extract_value_int2 gin_extract_value_int4 gin_extract_value_int8 gin_extract_value_interval "
        "gin_extract_value_macaddr gin_extract_value_macaddr8 gin_extract_value_money gin_extract_value_name "
        "gin_extract_value_numeric gin_extract_value_oid gin_extract_value_text gin_extract_value_time "
        "gin_extract_value_timestamp gin_extract_value_timestamptz gin_extract_value_timetz "
        "gin_extract_value_trgm gin_extract_value_uuid gin_extract_value_varbit gin_numeric_cmp "
        "gin_trgm_consistent gin_trgm_triconsistent ginint4_consistent ginint4_queryextract gseg_consistent "
        "gseg_penalty gseg_picksplit gseg_same gseg_union gtrgm_compress gtrgm_consistent gtrgm_decompress "
        "gtrgm_distance gtrgm_options gtrgm_penalty gtrgm_picksplit gtrgm_same hashean13 hashisbn hashisbn13 "
        "hashismn hashismn13 hashissn hashissn13 hashupc hs_contained hs_contains hstore_cmp hstore_eq "
        "hstore_ge hstore_gt hstore_hash hstore_hash_extended hstore_le hstore_lt hstore_ne "
        "hstore_subscript_handler hstore_version_diag icount idx index int2_dist int4_dist int8_dist "
        "interval_dist is_valid isbn isbn13 isbn13_in isbn_in isdefined isexists ismn ismn13 ismn13_in "
        "ismn_in isn_weak isneq isnge isngt isnle isnlt isnne issn issn13 issn13_in issn_in latitude "
        "levenshtein levenshtein_less_equal longitude lt_q_regex lt_q_rregex ltq_regex ltq_rregex ltree_cmp "
        "ltree_compress ltree_consistent ltree_decompress ltree_eq ltree_ge ltree_gist_options ltree_gt "
        "ltree_isparent ltree_le ltree_lt ltree_ne ltree_penalty ltree_picksplit ltree_risparent ltree_same "
        "ltreeparentsel ltxtq_exec ltxtq_rexec make_valid nlevel oid_dist populate_record rboolop sec_to_gc "
        "seg_center seg_cmp seg_contained seg_contains seg_different seg_ge seg_gt seg_in seg_inter seg_le "
        "seg_left seg_lower seg_lt seg_over_left seg_over_right seg_overlap seg_right seg_same seg_size "
        "seg_union seg_upper set_limit show_limit similarity similarity_dist similarity_op "
        "strict_word_similarity strict_word_similarity_commutator_op "
        "strict_word_similarity_dist_commutator_op strict_word_similarity_dist_op strict_word_similarity_op "
        "system_rows system_time time_dist ts_dist tstz_dist unaccent_init unaccent_lexize upc upc_in "
        "uuid_generate_v1 uuid_generate_v1mc uuid_generate_v3 uuid_generate_v4 uuid_generate_v5 uuid_nil "
        "uuid_ns_dns uuid_ns_oid uuid_ns_url uuid_ns_x500 word_similarity word_similarity_commutator_op "
        "word_similarity_dist_commutator_op word_similarity_dist_op word_similarity_op "
        "l2_distance inner_product cosine_distance l1_distance vector_dims vector_norm l2_norm hamming_distance "
        "jaccard_distance vector_cmp vector_l2_squared_distance vector_negative_inner_product "
        "vector_spherical_distance halfvec_cmp halfvec_l2_squared_distance halfvec_negative_inner_product "
        "halfvec_spherical_distance sparsevec_cmp sparsevec_l2_squared_distance sparsevec_negative_inner_product"
    ).split()
)
