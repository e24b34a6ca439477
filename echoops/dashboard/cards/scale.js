// Autoscale card (Phase 80): not installed yet; its phase replaces this file with an echoops.registerCard({...}) call.
