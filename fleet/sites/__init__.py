"""The site hierarchy (county → town → village → grid), the gateways and devices placed in it, and bulk import."""
