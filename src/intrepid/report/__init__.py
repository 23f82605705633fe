"""intrepid.report"""
