//! The tables one query sees, and the PostgreSQL catalog that describes them.
//!
//! Every query gets a catalog of its own (see [`crate::engine`]): its
//! default schema holds one provider per table — a snapshot of the local
//! store on an agent, a cluster-wide table on the coordinator — and
//! `pg_catalog` describes the same tables to PostgreSQL clients (psql's
//! `\d`, Grafana, drivers). `pg_catalog` is one long-lived provider per
//! engine, so the OIDs it hands out stay the same from one query to the
//! next (psql looks a table up by OID in a second query).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};

use crate::distributed::Cluster;
use crate::provider::StoreTableProvider;
use crate::store::TableStore;

/// Name of the schema PostgreSQL clients read the system catalog from.
pub const PG_CATALOG_SCHEMA: &str = "pg_catalog";

/// Where a query's tables come from.
#[derive(Debug, Clone)]
pub(crate) enum TableSource {
    /// This agent's store: each query reads a snapshot of it.
    Local(Arc<TableStore>),
    /// Every agent's store, through the coordinator's planner.
    Cluster(Arc<Cluster>),
}

impl TableSource {
    /// One provider per table, for one query.
    pub(crate) fn providers(&self) -> Vec<(String, Arc<dyn TableProvider>)> {
        match self {
            TableSource::Local(store) => store
                .snapshot()
                .into_iter()
                .map(|table| {
                    let name = table.name().to_owned();
                    (
                        name,
                        Arc::new(StoreTableProvider::new(table)) as Arc<dyn TableProvider>,
                    )
                })
                .collect(),
            TableSource::Cluster(cluster) => cluster.providers(),
        }
    }

    /// Names and schemas of the tables, without their data.
    fn schemas(&self) -> Vec<(String, SchemaRef)> {
        match self {
            TableSource::Local(store) => store
                .table_names()
                .into_iter()
                .filter_map(|name| store.schema(&name).map(|schema| (name, schema)))
                .collect(),
            TableSource::Cluster(cluster) => cluster.schemas(),
        }
    }
}

/// Adds PostgreSQL's functions and type names (`format_type`,
/// `pg_table_is_visible`, `::regclass`, ...) to `state`, for the queries
/// psql, Grafana and drivers send. Returns the state and a `pg_catalog`
/// schema over `source`'s tables.
pub(crate) fn with_pg_catalog(
    state: SessionState,
    source: TableSource,
) -> Result<(SessionState, Arc<dyn SchemaProvider>)> {
    let catalog_name = state.config().options().catalog.default_catalog.clone();
    let ctx = SessionContext::new_with_state(state);
    datafusion_pg_catalog::setup_pg_catalog(&ctx, &catalog_name, EmptyContextProvider)
        .map_err(|err| *err)?;
    let static_tables = Arc::new(PgCatalogStaticTables::try_new()?);
    let pg_catalog = PgCatalogSchemaProvider::try_new(
        SchemaCatalog {
            catalog: catalog_name,
            schema: ctx
                .state()
                .config()
                .options()
                .catalog
                .default_schema
                .clone(),
            source,
        },
        static_tables,
        EmptyContextProvider,
    )?;
    Ok((ctx.state(), Arc::new(pg_catalog)))
}

/// The catalog list of one query: the default catalog with the default
/// schema (`tables`) and `pg_catalog`.
pub(crate) fn query_catalog(
    state: &SessionState,
    tables: Vec<(String, Arc<dyn TableProvider>)>,
    pg_catalog: &Arc<dyn SchemaProvider>,
) -> Result<Arc<dyn CatalogProviderList>> {
    let options = state.config().options();
    let schema = MemorySchemaProvider::new();
    for (name, provider) in tables {
        schema.register_table(name, provider)?;
    }
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema(&options.catalog.default_schema, Arc::new(schema))?;
    catalog.register_schema(PG_CATALOG_SCHEMA, Arc::clone(pg_catalog))?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(options.catalog.default_catalog.clone(), Arc::new(catalog));
    Ok(Arc::new(catalogs))
}

/// What `pg_catalog` describes: the default schema's tables (names and
/// column types only; no query reads their rows through it).
#[derive(Debug, Clone)]
struct SchemaCatalog {
    catalog: String,
    schema: String,
    source: TableSource,
}

impl SchemaCatalog {
    fn is_ours(&self, catalog: &str, schema: &str) -> bool {
        catalog == self.catalog && schema == self.schema
    }
}

#[async_trait]
impl CatalogInfo for SchemaCatalog {
    async fn catalog_names(&self) -> Result<Vec<String>, DataFusionError> {
        Ok(vec![self.catalog.clone()])
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>, DataFusionError> {
        Ok((catalog == self.catalog).then(|| vec![self.schema.clone()]))
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> Result<Option<Vec<String>>, DataFusionError> {
        Ok(self.is_ours(catalog, schema).then(|| {
            self.source
                .schemas()
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        }))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, DataFusionError> {
        if !self.is_ours(catalog, schema) {
            return Ok(None);
        }
        Ok(self
            .source
            .schemas()
            .into_iter()
            .find_map(|(name, schema)| (name == table).then_some(schema)))
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>, DataFusionError> {
        Ok(self
            .table_schema(catalog, schema, table)
            .await?
            .map(|_| TableType::Base))
    }
}
